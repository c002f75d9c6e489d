"""Where ``nvidia-pytriton`` keeps ``tritonserver``, and what the server needs to run from there.

The PyPI package ships the server binary, the Python backend and one backend
stub per Python version inside its own folder, for pytriton's use. Run
directly (``local.py``), the server needs a backend folder that pairs the
backend with this Python's stub, the package's bundled libraries and this
Python's ``libpython`` on the library path, and this venv first on ``PATH``
(the stub runs ``model.py`` with the first ``python3`` it finds).
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

__all__ = ["link_backends", "server_binary", "server_library_env"]

_PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


def _site_packages() -> Path:
    """The venv's site-packages (where nvidia-pytriton lives)."""
    import pytriton

    return Path(pytriton.__file__).resolve().parent.parent


def _server_folder() -> Path:
    return _site_packages() / "pytriton" / "tritonserver"


def server_binary() -> Path:
    """The ``tritonserver`` executable of the installed package."""
    return _server_folder() / "bin" / "tritonserver"


def link_backends(workdir: Path) -> Path:
    """``workdir/backends`` with ``python/`` linking the Python backend and this Python's stub."""
    backend = _server_folder() / "backends" / "python"
    stub = _server_folder() / "python_backend_stubs" / _PYTHON_VERSION / "triton_python_backend_stub"
    target = workdir / "backends" / "python"
    target.mkdir(parents=True, exist_ok=True)
    links = {
        "libtriton_python.so": backend / "libtriton_python.so",
        "triton_python_backend_utils.py": backend / "triton_python_backend_utils.py",
        "triton_python_backend_stub": stub,
    }
    for name, source in links.items():
        link = target / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
    return target.parent


def server_library_env(base: dict[str, str]) -> dict[str, str]:
    """``base`` with ``LD_LIBRARY_PATH`` and ``PATH`` set for the server and its stubs."""
    env = dict(base)
    libs = [str(sysconfig.get_config_var("LIBDIR")), str(_site_packages() / "nvidia_pytriton.libs")]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env
