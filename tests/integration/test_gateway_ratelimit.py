"""Rate limits hold exactly across three gateway replicas sharing one NATS bucket."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from deploy.cluster import LocalSystem, ServiceProcess, free_port, wait_gateway_ready

pytestmark = pytest.mark.integration

LIMIT = 10
REQUESTS = 30


@pytest.fixture
async def replicas(system: LocalSystem, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[str]]:
    """Three gateway processes, one key, a limit of 10 requests a minute, a bucket of their own."""
    bucket = f"rate-test-{uuid.uuid4().hex[:8]}"
    gateways: list[ServiceProcess] = []
    urls = []
    log_dir = tmp_path_factory.mktemp("replicas")
    try:
        for n in range(3):
            port = free_port()
            env = {
                **system.env,
                "GATEWAY_PORT": str(port),
                "GATEWAY_API_KEYS": "limited-key,other-key",
                "GATEWAY_RATE_LIMIT_PER_MINUTE": str(LIMIT),
                "GATEWAY_RATE_LIMIT_BUCKET": bucket,
            }
            gateway = ServiceProcess("gateway", env, log_dir / f"replica{n}")
            gateway.start()
            gateways.append(gateway)
            urls.append(f"http://127.0.0.1:{port}")
        await asyncio.gather(*(wait_gateway_ready(url) for url in urls))
        yield urls
    finally:
        for gateway in gateways:
            gateway.stop()


async def test_limit_is_exact_across_replicas(replicas: list[str]) -> None:
    headers = {"Authorization": "Bearer limited-key"}
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(
            *(client.get(f"{replicas[n % 3]}/v1/documents", headers=headers) for n in range(REQUESTS))
        )
        other = await client.get(f"{replicas[0]}/v1/documents", headers={"Authorization": "Bearer other-key"})
    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(200) == LIMIT, statuses
    assert statuses.count(429) == REQUESTS - LIMIT, statuses
    # Every replica admitted some and refused some: the limit is shared, not per process.
    refused = [r for r in responses if r.status_code == 429]
    assert all(1 <= int(r.headers["retry-after"]) <= 60 for r in refused)
    assert "rate limit" in refused[0].json()["detail"]
    assert other.status_code == 200  # another key has a window of its own


async def test_each_chat_on_a_websocket_counts_against_the_limit(replicas: list[str]) -> None:
    url = replicas[0].replace("http://", "ws://") + "/v1/chat/ws"
    headers = {"Authorization": "Bearer limited-key"}
    outcomes = []
    async with websockets.connect(url, additional_headers=headers) as ws:  # the handshake counts the first
        for _ in range(LIMIT + 2):
            await ws.send(json.dumps({"prompt": "hello?"}))
            while (message := json.loads(await asyncio.wait_for(ws.recv(), 30)))["type"] == "chunk":
                pass
            outcomes.append(message)
    assert [m["type"] for m in outcomes] == ["answer"] * LIMIT + ["error"] * 2
    assert all(m["code"] == "rate_limited" and 1 <= m["retry_after_s"] <= 60 for m in outcomes[LIMIT:])
