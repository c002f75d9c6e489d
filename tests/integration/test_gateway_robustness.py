"""A dead inference service gives a clear 503 within the deadline, on every chat door."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

from deploy.cluster import LocalSystem

pytestmark = pytest.mark.integration

# context deadline (3 s) + inference accept deadline (2 s), with room for a slow CI machine
DEADLINE_S = 15.0


async def test_dead_inference_is_a_clear_503_never_a_hang(system: LocalSystem) -> None:
    inference = system.services["inference"]
    inference.stop()
    try:
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
            plain = await client.post("/v1/chat", json={"prompt": "anyone there?"})
            streamed = await client.post("/v1/chat", json={"prompt": "anyone there?", "stream": True})
            openai_style = await client.post(
                "/v1/chat/completions",
                json={"model": "extractive-cpu", "messages": [{"role": "user", "content": "anyone?"}]},
            )
            metrics = (await client.get("/metrics")).text
        ws_url = system.gateway_url.replace("http://", "ws://") + "/v1/chat/ws"
        async with websockets.connect(ws_url) as ws:
            await ws.send(json.dumps({"prompt": "anyone there?"}))
            ws_error = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE_S))
        elapsed = time.monotonic() - started
        assert plain.status_code == 503, plain.text
        assert "inference" in plain.json()["detail"]
        assert streamed.status_code == 503
        assert openai_style.status_code == 503
        assert "inference" in openai_style.json()["error"]["message"]
        assert ws_error["type"] == "error" and ws_error["code"] == "unavailable"
        assert elapsed < 4 * DEADLINE_S
        assert 'gateway_upstream_errors_total{service="inference"}' in metrics
    finally:
        inference.start()
        await inference.wait_healthy(system.nats.url)


async def test_metrics_count_requests_by_route(system: LocalSystem) -> None:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        await client.get("/v1/documents/0123")
        metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    text = metrics.text
    assert 'gateway_requests_total{method="GET",route="/v1/documents/{document_id}",status="404"}' in text
    assert "gateway_request_duration_seconds_bucket" in text
    assert "gateway_streams_in_flight" in text


async def test_openapi_schema_is_served(system: LocalSystem) -> None:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        schema = (await client.get("/schema/openapi.json")).json()
    for path in ("/v1/chat", "/v1/chat/completions", "/v1/models", "/v1/documents", "/v1/search"):
        assert path in schema["paths"]
