"""Start the real tritonserver for tests: ``with start_triton(tmp_path_factory) as server``.

Meant for a module- or session-scoped fixture::

    @pytest.fixture(scope="session")
    def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
        with start_triton(tmp_path_factory) as server:
            yield server

The server listens on free loopback ports; ``server.stop()`` then
``server.start(); server.wait_ready()`` restarts it on the same ports.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from deploy.triton.local import LocalTriton, TritonOptions

__all__ = ["free_port", "start_triton"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _three_free_ports() -> tuple[int, int, int]:
    # Hold all three sockets at once so that the three ports differ.
    with ExitStack() as stack:
        ports = []
        for _ in range(3):
            probe = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            probe.bind(("127.0.0.1", 0))
            ports.append(int(probe.getsockname()[1]))
    return ports[0], ports[1], ports[2]


@contextmanager
def start_triton(
    tmp_path_factory: pytest.TempPathFactory, ready_timeout_s: float = 90.0
) -> Iterator[LocalTriton]:
    """Run tritonserver with the local model repository until the block ends."""
    grpc_port, http_port, metrics_port = _three_free_ports()
    options = TritonOptions(
        workdir=tmp_path_factory.mktemp("triton"),
        grpc_port=grpc_port,
        http_port=http_port,
        metrics_port=metrics_port,
        ready_timeout_s=ready_timeout_s,
    )
    with LocalTriton(options) as server:
        yield server
