"""The launcher's command line and environment (no server started)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from deploy.triton.local import DEFAULT_MODEL_REPOSITORY, LocalTriton, TritonOptions

_ROOT = Path(__file__).resolve().parents[3]


def test_command_binds_loopback_with_its_own_backend_dir(tmp_path: Path) -> None:
    server = LocalTriton(TritonOptions(workdir=tmp_path, grpc_port=1, http_port=2, metrics_port=3))
    command = server.command()
    assert command[0].endswith("/tritonserver")
    for flag in [
        "--grpc-address=127.0.0.1",
        "--http-address=127.0.0.1",
        "--metrics-address=127.0.0.1",
        "--grpc-port=1",
        "--http-port=2",
        "--metrics-port=3",
        "--log-verbose=0",
        f"--model-repository={DEFAULT_MODEL_REPOSITORY}",
        f"--backend-directory={tmp_path / 'backends'}",
    ]:
        assert flag in command
    assert f"--backend-config=python,shm-region-prefix-name={server.shm_prefix}" in command
    links = sorted(p.name for p in (tmp_path / "backends" / "python").iterdir())
    assert links == ["libtriton_python.so", "triton_python_backend_stub", "triton_python_backend_utils.py"]
    assert all((tmp_path / "backends" / "python" / name).resolve().is_file() for name in links)
    assert (server.grpc_url, server.http_url) == ("127.0.0.1:1", "http://127.0.0.1:2")


def test_environment_puts_python_libdir_and_venv_first(tmp_path: Path) -> None:
    env = LocalTriton(TritonOptions(workdir=tmp_path))._environment()
    assert env["LD_LIBRARY_PATH"].split(":")[0] == sysconfig.get_config_var("LIBDIR")
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["TORCHINDUCTOR_CACHE_DIR"].startswith(str(tmp_path))


def test_every_server_shares_one_onnx_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIR", str(tmp_path / "state"))
    first = LocalTriton(TritonOptions(workdir=tmp_path / "a"))._environment()
    second = LocalTriton(TritonOptions(workdir=tmp_path / "b"))._environment()
    assert first["EMBED_ONNX_CACHE_DIR"] == second["EMBED_ONNX_CACHE_DIR"] == str(tmp_path / "state" / "onnx")
    chosen = TritonOptions(workdir=tmp_path, onnx_cache_dir=tmp_path / "mine")
    assert LocalTriton(chosen)._environment()["EMBED_ONNX_CACHE_DIR"] == str(tmp_path / "mine")


def test_each_server_gets_its_own_shared_memory_prefix(tmp_path: Path) -> None:
    options = TritonOptions(workdir=tmp_path)
    assert LocalTriton(options).shm_prefix != LocalTriton(options).shm_prefix


def test_cli_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deploy.triton.local", "--help"],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "--grpc-port" in result.stdout and "--workdir" in result.stdout
