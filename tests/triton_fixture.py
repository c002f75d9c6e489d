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

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from deploy.triton.local import LocalTriton

__all__ = ["start_triton"]


@contextmanager
def start_triton(
    tmp_path_factory: pytest.TempPathFactory, ready_timeout_s: float = 90.0
) -> Iterator[LocalTriton]:
    """Run tritonserver with the local model repository until the block ends."""
    server = LocalTriton.on_free_ports(tmp_path_factory.mktemp("triton"), ready_timeout_s=ready_timeout_s)
    with server:
        yield server
