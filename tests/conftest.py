"""Fixtures that start real servers: nats-server, tritonserver and the services.

They are session-scoped (Triton takes several seconds to load its models),
so integration tests share one system; a test that stops a server starts it
again before it ends, or uses servers of its own.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from deploy.triton.local import LocalTriton
from tests.servers import NatsServer, ServiceProcess, free_port
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


@dataclass
class System:
    """The whole system on loopback: NATS, Triton, the four services."""

    nats: NatsServer
    triton: LocalTriton
    gateway_url: str
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    async def restart(self, name: str) -> None:
        """Stop a service (SIGTERM) and start it again, ready."""
        service = self.services[name]
        service.stop()
        service.start()
        await service.wait_healthy(self.nats.url)


def service_env(nats_url: str, triton_grpc: str, data_dir: Path, gateway_port: int) -> dict[str, str]:
    """The environment of every service of a test system."""
    return {
        "GATEWAY_NATS_URL": nats_url,
        "SCRAPER_NATS_URL": nats_url,
        "RAG_NATS_URL": nats_url,
        "INFERENCE_NATS_URL": nats_url,
        "INFERENCE_TRITON_GRPC_URL": triton_grpc,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(gateway_port),
        "RAG_DATA_DIR": str(data_dir / "rag"),
        # Tests serve pages from loopback: allow it explicitly (the guard stays on).
        "SCRAPER_ALLOW_HOSTS": "127.0.0.1,localhost",
        "SCRAPER_RESPECT_ROBOTS": "false",
        "TORCHINDUCTOR_CACHE_DIR": str(data_dir / "torchinductor"),
    }


@pytest.fixture(scope="session")
async def system(
    nats_server: NatsServer, triton: LocalTriton, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[System]:
    """NATS, Triton, inference, scraper, rag and the gateway, all ready."""
    data_dir = tmp_path_factory.mktemp("system")
    gateway_port = free_port()
    env = service_env(nats_server.url, f"127.0.0.1:{triton.options.grpc_port}", data_dir, gateway_port)
    running = System(nats=nats_server, triton=triton, gateway_url=f"http://127.0.0.1:{gateway_port}", env=env)
    for name in ("inference", "scraper", "rag", "gateway"):
        running.services[name] = ServiceProcess(name, env, data_dir)
        running.services[name].start()
    try:
        for service in running.services.values():
            await service.wait_healthy(nats_server.url)
        async with httpx.AsyncClient(base_url=running.gateway_url, timeout=5) as client:
            await _wait_ready(client)
        yield running
    finally:
        for service in running.services.values():
            service.stop()


async def _wait_ready(client: httpx.AsyncClient) -> None:
    for _ in range(600):
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)  # readiness probe interval
    raise TimeoutError("the gateway never became ready")
