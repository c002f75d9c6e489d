"""Fixtures that start real servers: nats-server, tritonserver and the services.

They are session-scoped (Triton takes several seconds to load its models),
so integration tests share one system; a test that stops a server starts it
again before it ends, or uses servers of its own (see `deploy.cluster`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from deploy.cluster import LocalSystem, NatsServer
from deploy.triton.local import LocalTriton
from tests.triton_fixture import start_triton

os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", "/tmp/genai-tests-torchinductor")


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A real nats-server with JetStream on a free loopback port."""
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    """The real tritonserver on CPU with the local model repository."""
    with start_triton(tmp_path_factory) as server:
        yield server


@pytest.fixture(scope="session")
async def system(
    nats_server: NatsServer, triton: LocalTriton, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LocalSystem]:
    """NATS, Triton, inference, scraper, rag and the gateway, all ready."""
    async with LocalSystem.start(
        tmp_path_factory.mktemp("system"), nats=nats_server, triton=triton
    ) as running:
        yield running
