"""Run the real ``tritonserver`` (from ``nvidia-pytriton``) on this machine's CPU.

``LocalTriton`` starts the server on loopback ports with the model repository
beside this file, waits on its readiness probe and stops it cleanly (SIGTERM,
grace period, SIGKILL of its process group, removal of its shared-memory
files).  Measured facts behind each step: ``/work/shared/notes/triton-on-cpu.md``.

As a command (``./dev up`` runs it under honcho)::

    python -m deploy.triton.local --grpc-port 8001 --http-port 8002 \\
        --metrics-port 8003 --workdir .state/triton
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from deploy.triton.pytriton_layout import link_backends, server_binary, server_library_env

__all__ = [
    "DEFAULT_MODEL_REPOSITORY",
    "LocalTriton",
    "TritonLaunchError",
    "TritonOptions",
    "default_onnx_cache_dir",
    "free_ports",
    "main",
]

DEFAULT_MODEL_REPOSITORY = Path(__file__).resolve().parent / "models"
_REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def default_onnx_cache_dir() -> Path:
    """Where the ``embed`` model keeps its exported ONNX graph: ``$STATE_DIR/onnx`` (``.state/onnx``).

    Shared by every local server of this checkout (``./dev up``, tests, benchmarks, the
    one-process baseline), so the graph is exported once, not once per server.
    """
    return Path(os.environ.get("STATE_DIR") or _REPOSITORY_ROOT / ".state") / "onnx"


class TritonLaunchError(RuntimeError):
    """The server could not be started or did not become ready."""


@dataclass(frozen=True, kw_only=True)
class TritonOptions:
    """Where and how to run the server; every default works on a laptop."""

    workdir: Path  # backend links, logs, caches and temp files go here
    model_repository: Path = DEFAULT_MODEL_REPOSITORY
    grpc_port: int = 8001
    http_port: int = 8002
    metrics_port: int = 8003
    ready_timeout_s: float = 90.0  # start-up to all models ready (about 6 s measured)
    ready_poll_s: float = 0.1  # interval between readiness probes
    probe_timeout_s: float = 1.0  # timeout of one readiness probe
    stop_grace_s: float = 10.0  # SIGTERM to SIGKILL (SIGTERM waits for open streams)
    log_to_file: bool = True  # server output to <workdir>/tritonserver.log, else inherited
    extra_args: tuple[str, ...] = field(default=())  # more tritonserver flags
    onnx_cache_dir: Path = field(default_factory=default_onnx_cache_dir)  # embed's exported graph


class LocalTriton:
    """One tritonserver process; ``with LocalTriton(options) as server:`` starts it ready."""

    def __init__(self, options: TritonOptions) -> None:
        self.options = options
        self.shm_prefix = _new_shm_prefix()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @classmethod
    def on_free_ports(cls, workdir: Path, *, ready_timeout_s: float = 90.0) -> LocalTriton:
        """A server (not started) on three distinct free loopback ports."""
        grpc_port, http_port, metrics_port = free_ports(3)
        return cls(
            TritonOptions(
                workdir=workdir,
                grpc_port=grpc_port,
                http_port=http_port,
                metrics_port=metrics_port,
                ready_timeout_s=ready_timeout_s,
            )
        )

    @property
    def grpc_url(self) -> str:
        """``host:port`` for tritonclient.grpc."""
        return f"127.0.0.1:{self.options.grpc_port}"

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP endpoint."""
        return f"http://127.0.0.1:{self.options.http_port}"

    @property
    def log_path(self) -> Path:
        """The server's log file (when ``log_to_file``)."""
        return self.options.workdir / "tritonserver.log"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def _environment(self) -> dict[str, str]:
        env = server_library_env(dict(os.environ))
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_OFFLINE"] = "1"
        env["TORCHINDUCTOR_CACHE_DIR"] = str(self.options.workdir / "torchinductor")
        env["EMBED_ONNX_CACHE_DIR"] = str(self.options.onnx_cache_dir)  # read by embed's onnx_export
        env["TMPDIR"] = str(self._temp_dir())
        return env

    def _temp_dir(self) -> Path:
        return self.options.workdir / "tmp"

    def command(self) -> list[str]:
        """The tritonserver command line."""
        o = self.options
        return [
            str(server_binary()),
            f"--model-repository={o.model_repository}",
            f"--backend-directory={link_backends(o.workdir)}",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={o.grpc_port}",
            "--http-address=127.0.0.1",
            f"--http-port={o.http_port}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={o.metrics_port}",
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            "--pinned-memory-pool-byte-size=0",
            "--log-verbose=0",
            *o.extra_args,
        ]

    def start(self) -> None:
        """Start the server in its own session (returns at once; see ``wait_ready``)."""
        if self.is_running():
            raise TritonLaunchError("tritonserver is already running")
        self.options.workdir.mkdir(parents=True, exist_ok=True)
        self.shm_prefix = _new_shm_prefix()
        self._temp_dir().mkdir(parents=True, exist_ok=True)
        command = self.command()
        output: IO[bytes] | None = None  # None: inherit our stdout (the CLI under honcho)
        if self.options.log_to_file:
            self._log = output = self.log_path.open("ab")
        self._process = subprocess.Popen(
            command,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            start_new_session=True,
        )

    def is_running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def is_ready(self) -> bool:
        """One readiness probe: HTTP ``/v2/health/ready`` answers 200."""
        try:
            with urllib.request.urlopen(  # noqa: S310 - loopback URL we built
                f"{self.http_url}/v2/health/ready", timeout=self.options.probe_timeout_s
            ) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def wait_ready(self, timeout_s: float | None = None, abort: threading.Event | None = None) -> bool:
        """Poll readiness until ready (True) or ``abort`` is set (False).

        Raises ``TritonLaunchError`` when the server exits or the timeout passes.
        """
        limit = timeout_s if timeout_s is not None else self.options.ready_timeout_s
        deadline = time.monotonic() + limit
        abort = abort or threading.Event()
        while time.monotonic() < deadline:
            if not self.is_running():
                code = self._process.returncode if self._process is not None else None
                raise TritonLaunchError(f"tritonserver exited with {code}; see its log ({self.log_path})")
            if self.is_ready():
                return True
            if abort.wait(self.options.ready_poll_s):  # the poll interval of a readiness probe
                return False
        raise TritonLaunchError(f"tritonserver not ready after {limit}s; see its log ({self.log_path})")

    def stop(self, grace_s: float | None = None) -> None:
        """SIGTERM, wait ``grace_s`` (0: kill at once), SIGKILL the group, remove shm files."""
        process = self._process
        grace = self.options.stop_grace_s if grace_s is None else grace_s
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
            # Python-backend stubs live in the group; kill whatever is left of it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            self._process = None
        self._remove_leftovers()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _remove_leftovers(self) -> None:
        shared_memory = Path("/dev/shm")  # noqa: S108 - the server's own files, by unique prefix
        for shm in shared_memory.glob(f"{self.shm_prefix}*"):
            shm.unlink(missing_ok=True)
        temp = self._temp_dir()
        if temp.is_dir():
            for entry in temp.glob("python_env_*"):
                _remove_tree(entry)

    def wait(self) -> int:
        """Block until the server exits; return its exit code."""
        if self._process is None:
            raise TritonLaunchError("tritonserver was not started")
        return self._process.wait()

    def __enter__(self) -> LocalTriton:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that nothing listens on right now on 127.0.0.1."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            probe = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            probe.bind(("127.0.0.1", 0))  # held open, so the ports differ
            ports.append(int(probe.getsockname()[1]))
    return ports


def _new_shm_prefix() -> str:
    """A shared-memory prefix of our own, so that servers can run side by side."""
    return f"triton_{uuid.uuid4().hex[:12]}_"


def _remove_tree(path: Path) -> None:
    """Remove a folder tree, ignoring files that vanish meanwhile."""
    shutil.rmtree(path, ignore_errors=True)


def _parse_args(argv: list[str] | None) -> TritonOptions:
    parser = argparse.ArgumentParser(description="Run tritonserver on CPU with the local model repository.")
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--http-port", type=int, default=8002)
    parser.add_argument("--metrics-port", type=int, default=8003)
    parser.add_argument("--workdir", type=Path, default=Path(".state/triton"))
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    parser.add_argument(
        "--onnx-cache-dir", type=Path, default=None, help="embed's exported graph (default: .state/onnx)"
    )
    parser.add_argument("--ready-timeout", type=float, default=90.0, help="seconds to wait for readiness")
    parser.add_argument("--stop-grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    args = parser.parse_args(argv)
    return TritonOptions(
        workdir=args.workdir.resolve(),
        model_repository=args.model_repository.resolve(),
        onnx_cache_dir=(args.onnx_cache_dir or default_onnx_cache_dir()).resolve(),
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
        ready_timeout_s=args.ready_timeout,
        stop_grace_s=args.stop_grace,
        log_to_file=False,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the server in the foreground until SIGINT/SIGTERM or until it dies."""
    server = LocalTriton(_parse_args(argv))
    stop_requested = threading.Event()

    def _request_stop(signum: int, _frame: object) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    server.start()
    try:
        if server.wait_ready(abort=stop_requested):
            print(f"tritonserver ready: grpc {server.grpc_url}, http {server.http_url}", flush=True)
        while not stop_requested.is_set() and server.is_running():
            stop_requested.wait(timeout=0.5)  # wakes on a signal or to check the child
    except TritonLaunchError as error:
        print(f"tritonserver failed: {error}", file=sys.stderr, flush=True)
        server.stop()
        return 1
    died = not stop_requested.is_set()
    server.stop()
    if died:
        print("tritonserver exited unexpectedly", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
