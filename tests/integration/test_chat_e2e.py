"""A chat end to end through real NATS, real Triton and the four services."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import nats
import pytest

from deploy.cluster import LocalSystem as System
from deploy.cluster import ServiceProcess, free_port, wait_for_port
from tests.integration.pages import serve_pages

pytestmark = pytest.mark.integration

PAGE = """<!doctype html><html lang="en"><head><title>Aurora Station facts</title></head>
<body><nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<article><h1>Aurora Station</h1>
<p>Aurora Station is a research base on the Ross Ice Shelf, founded in 1987 by a consortium
of six universities to study ice core samples and the climate record they hold.</p>
<p>The station hosts up to forty scientists during the austral summer and a crew of nine
over the winter, when temperatures drop below minus fifty degrees.</p>
<p>Its main instrument is a deep drilling rig that has reached a depth of 2,400 metres.</p>
</article><footer>Copyright 2024 Example Org. All rights reserved.</footer></body></html>"""


@pytest.fixture
async def page_server() -> AsyncIterator[str]:
    """A local web page for the scraper to read."""
    async with serve_pages({"/aurora": PAGE}) as base:
        yield base


async def test_health_and_readiness(system: System) -> None:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=10) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["nats"] and checks["triton"] and checks["scraper"] and checks["rag"]


async def test_chat_without_context_says_it_has_no_answer(system: System) -> None:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        response = await client.post("/v1/chat", json={"prompt": "How deep is the drilling rig?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"id", "answer", "sources", "model"}
    assert body["model"] == "extractive-cpu"
    assert body["sources"] == []
    assert "not contain" in body["answer"] or "no source" in body["answer"].lower()


async def test_chat_reads_the_linked_page_and_cites_it(system: System, page_server: str) -> None:
    url = f"{page_server}/aurora"
    prompt = f"According to {url}, how deep has the drilling rig reached?"
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        response = await client.post("/v1/chat", json={"prompt": prompt})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sources"][0]["url"] == url
    assert body["sources"][0]["kind"] == "url"
    assert "2,400 metres" in body["answer"]
    assert "[1]" in body["answer"]


async def test_bad_requests_get_a_clear_4xx(system: System) -> None:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=10) as client:
        missing = await client.post("/v1/chat", json={})
        wrong_type = await client.post("/v1/chat", json={"prompt": 42})
        empty = await client.post("/v1/chat", json={"prompt": ""})
        not_json = await client.post(
            "/v1/chat", content=b"{nope", headers={"content-type": "application/json"}
        )
        huge = await client.post("/v1/chat", json={"prompt": "x" * 2_000_000})
    for response in (missing, wrong_type, empty, not_json):
        assert response.status_code == 400, response.text
        assert response.json()["detail"]
    assert huge.status_code == 413


async def test_an_enricher_that_never_answers_does_not_stop_the_chat(system: System) -> None:
    """The scraper is replaced by a subscriber that swallows requests: the chat still answers."""
    scraper = system.services["scraper"]
    scraper.stop()
    black_hole = await nats.connect(system.nats.url)
    swallowed = asyncio.Event()

    async def swallow(_: object) -> None:
        swallowed.set()  # and never reply

    await black_hole.subscribe("scrape", cb=swallow)
    try:
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
            response = await client.post("/v1/chat", json={"prompt": "see https://example.invalid/x"})
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.text
        assert swallowed.is_set()
        assert any("scraper" in error for error in response.json()["context_errors"])
        # The context deadline (3 s by default) bounds the wait, not the chat deadline (60 s).
        assert elapsed < 15
    finally:
        await black_hole.close()
        scraper.start()
        await scraper.wait_healthy(system.nats.url)


async def test_the_chat_deadline_bounds_the_enrichment_too(
    system: System, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """GATEWAY_CHAT_TIMEOUT_S is the whole chat: an enricher that never answers cannot outlast it."""
    port = free_port()
    env = {
        **system.env,
        "GATEWAY_PORT": str(port),
        "GATEWAY_CHAT_TIMEOUT_S": "2",
        "GATEWAY_CONTEXT_TIMEOUT_S": "30",  # alone, it would let the scraper hold the chat for 30 s
    }
    gateway = ServiceProcess("gateway", env, tmp_path_factory.mktemp("short-chats"))
    scraper = system.services["scraper"]
    scraper.stop()
    black_hole = await nats.connect(system.nats.url)

    async def swallow(_: object) -> None:
        pass  # and never reply

    await black_hole.subscribe("scrape", cb=swallow)
    gateway.start()
    try:
        await asyncio.to_thread(wait_for_port, port, 30.0, gateway.process)
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            response = await client.post("/v1/chat", json={"prompt": "see https://example.invalid/x"})
        elapsed = time.monotonic() - started
        assert response.status_code == 504, response.text
        assert response.json()["code"] == "timeout"
        assert elapsed < 10, elapsed
    finally:
        gateway.stop()
        await black_hole.close()
        scraper.start()
        await scraper.wait_healthy(system.nats.url)


async def test_a_missing_enricher_gives_less_context_not_a_failed_chat(system: System) -> None:
    rag = system.services["rag"]
    rag.stop()
    try:
        async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
            ready = await client.get("/readyz")
            response = await client.post("/v1/chat", json={"prompt": "anything in my documents?"})
        assert ready.status_code == 503
        assert "rag" in ready.json()["missing"]
        assert response.status_code == 200, response.text
        assert any(error.startswith("rag:") for error in response.json()["context_errors"])
    finally:
        rag.start()
        await rag.wait_healthy(system.nats.url)


async def test_api_keys_switch(system: System, tmp_path_factory: pytest.TempPathFactory) -> None:
    port = free_port()
    env = {**system.env, "GATEWAY_PORT": str(port), "GATEWAY_API_KEYS": "k-one,k-two"}
    gateway = ServiceProcess("gateway", env, tmp_path_factory.mktemp("keyed"))
    gateway.start()
    try:
        await asyncio.to_thread(wait_for_port, port, 30.0, gateway.process)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            anonymous = await client.post("/v1/chat", json={"prompt": "hi"})
            wrong = await client.post(
                "/v1/chat", json={"prompt": "hi"}, headers={"Authorization": "Bearer x"}
            )
            good = await client.post(
                "/v1/chat", json={"prompt": "hi"}, headers={"Authorization": "Bearer k-two"}
            )
            health = await client.get("/healthz")
        assert anonymous.status_code == 401
        assert "API key" in anonymous.json()["detail"]
        assert wrong.status_code == 401
        assert good.status_code == 200, good.text
        assert health.status_code == 200
    finally:
        gateway.stop()


def test_gateway_refuses_a_public_bind_without_keys(
    system: System, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = {**system.env, "GATEWAY_HOST": "0.0.0.0", "GATEWAY_PORT": str(free_port())}
    gateway = ServiceProcess("gateway", env, tmp_path_factory.mktemp("unsafe"))
    gateway.start()
    assert gateway.process.wait(timeout=30) == 2
    assert "without API keys" in gateway.log()


async def test_the_chat_id_is_the_correlation_id_on_every_services_log_lines(
    system: System, page_server: str
) -> None:
    prompt = f"What does {page_server}/aurora say about the winter crew?"
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        response = await client.post("/v1/chat", json={"prompt": prompt})
    assert response.status_code == 200, response.text
    chat_id = response.json()["id"]
    for name in ("gateway", "scraper", "rag", "inference"):
        lines = [
            json.loads(line)
            for line in system.services[name].log().splitlines()
            if line.startswith("{") and chat_id in line
        ]
        assert lines, f"{name} logged nothing for chat {chat_id}"
        assert all(line.get("correlation_id", "").startswith(chat_id) for line in lines), (name, lines)
