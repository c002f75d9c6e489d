"""The gateway app in process (against a real nats-server): CORS, request ids, limits, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from deploy.cluster import NatsServer
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    settings = GatewaySettings(
        nats_url=nats_server.url, cors_origins=("https://chat.example",), max_body_bytes=10_000
    )
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


async def test_cors_allows_the_configured_origin_only(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = await client.options("/v1/chat", headers={"Origin": "https://chat.example", **preflight})
    other = await client.options("/v1/chat", headers={"Origin": "https://evil.example", **preflight})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://chat.example"
    assert "access-control-allow-origin" not in other.headers or other.status_code >= 400


async def test_json_bodies_over_the_limit_are_413_with_a_reason(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    response = await client.post("/v1/search", json={"query": "x" * 20_000})
    assert response.status_code == 413
    assert "10000 bytes" in response.json()["detail"]
    assert response.headers["x-request-id"]


async def test_page_and_metrics_are_served(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    page = await client.get("/")
    script = await client.get("/static/app.js")
    metrics = await client.get("/metrics")
    assert page.status_code == 200 and "<textarea" in page.text
    assert script.status_code == 200 and "sseEvents" in script.text
    assert "gateway_requests_total" in metrics.text
