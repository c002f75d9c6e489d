"""Batch jobs through the real gateway, NATS, inference and Triton: the REST and WebSocket door."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import nats
import pytest
import websockets

from deploy.cluster import LocalSystem
from proto.prompt import PromptSource, build_prompt
from proto.subjects import JOB_RESULTS_OBJECTS, JOBS_CONSUMER, JOBS_STREAM, job_items_subject

pytestmark = pytest.mark.integration

JOB_WAIT_S = 90.0


def text_prompt(n: int) -> str:
    """A prompt holding its own sources (see deploy/triton/README.md): the answer names Town<n>."""
    text = f"The capital of Freedonia district {n} is Town{n}. Freedonia exports cheese and wool."
    return build_prompt(
        f"What is the capital of Freedonia district {n}?", [PromptSource(1, f"registry {n}", text)]
    )


def ws_url(system: LocalSystem, job_id: str) -> str:
    return system.gateway_url.replace("http://", "ws://") + f"/v1/jobs/{job_id}/events"


async def watch(system: LocalSystem, job_id: str) -> list[dict[str, Any]]:
    """Every event of the job's WebSocket until the gateway closes it (the job ended)."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(JOB_WAIT_S), websockets.connect(ws_url(system, job_id)) as ws:
        async for message in ws:
            events.append(json.loads(message))
    return events


async def submit(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


async def test_a_50_item_text_job_completes_with_every_answer(system: LocalSystem) -> None:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        job_id = await submit(
            client,
            {"kind": "text", "items": [text_prompt(n) for n in range(50)], "options": {"max_tokens": 40}},
        )
        events = await watch(system, job_id)
        assert events[-1]["state"] == "completed"
        assert events[-1]["done"] == 50
        status = (await client.get(f"/v1/jobs/{job_id}")).json()
        assert (status["state"], status["done"], status["total"], status["failed"]) == (
            "completed",
            50,
            50,
            0,
        )
        results = await client.get(f"/v1/jobs/{job_id}/results")
        assert results.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in results.text.splitlines()]
        assert [line["item"] for line in lines] == list(range(50))
        assert all(f"Town{line['item']}" in line["text"] for line in lines)
        one = await client.get(f"/v1/jobs/{job_id}/items/7")
        assert one.status_code == 200 and "Town7" in one.text
        assert one.headers["content-type"].startswith("text/plain")


async def test_a_10_item_image_job_links_every_png(system: LocalSystem) -> None:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        items = [f"a lighthouse at dusk, study {n}" for n in range(10)]
        job_id = await submit(
            client, {"kind": "image", "items": items, "options": {"width": 64, "height": 48}}
        )
        events = await watch(system, job_id)
        assert events[-1]["state"] == "completed"
        listing = (await client.get(f"/v1/jobs/{job_id}/results")).json()
        assert [link["item"] for link in listing["items"]] == list(range(10))
        for link in listing["items"]:
            png = await client.get(link["url"])
            assert png.status_code == 200 and png.headers["content-type"] == "image/png"
            assert png.content.startswith(b"\x89PNG\r\n\x1a\n")


async def test_cancelling_stops_the_remaining_items(system: LocalSystem) -> None:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        job_id = await submit(client, {"kind": "text", "items": [text_prompt(n) for n in range(60)]})
        async with asyncio.timeout(JOB_WAIT_S), websockets.connect(ws_url(system, job_id)) as ws:
            async for message in ws:
                if json.loads(message)["done"] >= 2:
                    break
        cancelled = (await client.delete(f"/v1/jobs/{job_id}")).json()
        assert cancelled["state"] == "cancelled" and cancelled["done"] < 60
        await _wait_for_idle_consumer(system)
        after = (await client.get(f"/v1/jobs/{job_id}")).json()
        assert after["state"] == "cancelled" and after["done"] == cancelled["done"]
        stored = await _stored_results(system, job_id)
        # Only items already running when the job was cancelled may have finished (4 per replica).
        assert cancelled["done"] <= stored <= cancelled["done"] + 4
        assert (await client.delete(f"/v1/jobs/{job_id}")).json()["state"] == "cancelled"


async def test_bad_input_gets_a_4xx_with_a_reason(system: LocalSystem) -> None:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        wrong_kind = await client.post("/v1/jobs", json={"kind": "video", "items": ["x"]})
        assert wrong_kind.status_code == 400
        no_items = await client.post("/v1/jobs", json={"kind": "text", "items": []})
        assert no_items.status_code == 400
        too_many = await client.post("/v1/jobs", json={"kind": "text", "items": ["q?"] * 1001})
        assert too_many.status_code == 413 and "at most 1000" in too_many.json()["detail"]
        blank = await client.post("/v1/jobs", json={"kind": "text", "items": ["ok?", " "]})
        assert blank.status_code == 400 and "item 1" in blank.json()["detail"]
        huge = await client.post(
            "/v1/jobs", json={"kind": "image", "items": ["x"], "options": {"width": 5000}}
        )
        assert huge.status_code == 400
        assert (await client.get("/v1/jobs/0123456789abcdef0123456789abcdef")).status_code == 404
        assert (await client.get("/v1/jobs/../etc")).status_code == 404
        job_id = await submit(client, {"kind": "text", "items": [text_prompt(1)]})
        assert (await client.get(f"/v1/jobs/{job_id}/items/5")).status_code == 404
        await watch(system, job_id)
        assert (await client.get(f"/v1/jobs/{job_id}/items/0")).status_code == 200
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with websockets.connect(ws_url(system, "0" * 32)) as ws:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


async def _wait_for_idle_consumer(system: LocalSystem) -> None:
    """Until no job item is being worked (readiness probe of the consumer)."""
    client = await nats.connect(system.nats.url)
    try:
        js = client.jetstream()
        async with asyncio.timeout(JOB_WAIT_S):
            while True:
                if not (await js.consumer_info(JOBS_STREAM, JOBS_CONSUMER)).num_ack_pending:
                    break
                await asyncio.sleep(0.05)  # polling interval of a readiness probe
            info = await js.stream_info(JOBS_STREAM, subjects_filter=job_items_subject("*"))
            assert not info.state.subjects
    finally:
        await client.close()


async def _stored_results(system: LocalSystem, job_id: str) -> int:
    client = await nats.connect(system.nats.url)
    try:
        store = await client.jetstream().object_store(JOB_RESULTS_OBJECTS)
        return sum(1 for info in await store.list() if info.name.startswith(f"{job_id}/"))
    finally:
        await client.close()


async def test_a_text_jobs_sampling_reaches_the_model(system: LocalSystem) -> None:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        options = {"sampling": {"stop": ["Town"], "temperature": 0}}
        job_id = await submit(
            client, {"kind": "text", "items": [text_prompt(n) for n in range(3)], "options": options}
        )
        events = await watch(system, job_id)
        assert events[-1]["state"] == "completed"
        lines = [
            json.loads(line) for line in (await client.get(f"/v1/jobs/{job_id}/results")).text.splitlines()
        ]
        refused = await client.post(
            "/v1/jobs", json={"kind": "text", "items": ["x"], "options": {"sampling": {"temperature": 9}}}
        )
    assert [line["text"] for line in lines] == [
        f"The capital of Freedonia district {n} is " for n in range(3)
    ]
    assert refused.status_code == 400 and "temperature" in refused.text
