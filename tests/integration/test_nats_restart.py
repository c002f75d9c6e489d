"""NATS going away and coming back: clear errors while it is gone, everything works again after.

The system here has a NATS server of its own (stopping the shared one would
disturb other tests); Triton is the shared one.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
import websockets

from deploy.cluster import LocalSystem, NatsServer
from deploy.triton.local import LocalTriton
from tests.integration.test_gateway_documents import markdown, wait_ready
from tests.integration.test_jobs_api import submit, text_prompt, watch

pytestmark = pytest.mark.integration

# a chat's deadlines (context 3 s, accept 2 s) with room for a slow CI machine
DEADLINE_S = 15.0
RECOVERY_S = 60.0  # every service reconnects within this (nats-py's reconnect wait is 2 s)
POLL_S = 0.2  # polling interval of readiness, which has no event to await


async def _ready_again(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + RECOVERY_S
    while time.monotonic() < deadline:
        if (await client.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"the gateway was not ready {RECOVERY_S} s after NATS came back")


async def test_nats_gone_gives_clear_errors_and_back_everything_works(
    triton: LocalTriton, tmp_path: Path
) -> None:
    nats = NatsServer(tmp_path / "nats")
    nats.start()
    try:
        async with (
            LocalSystem.start(tmp_path, nats=nats, triton=triton) as system,
            httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client,
        ):
            topic = f"quorvex{uuid.uuid4().hex[:6]}"
            before = await client.post("/v1/documents", files={"file": (f"{topic}.md", markdown(topic))})
            assert (await wait_ready(client, before.json()["document_id"]))["state"] == "ready"

            question = {"prompt": f"When must the {topic} valve be closed?", "stream": True}
            async with client.stream("POST", "/v1/chat", json=question) as streamed:
                lines = aiter(streamed.aiter_lines())
                assert (await anext(lines)) == "event: chunk"
                nats.stop()  # mid-stream
                started = time.monotonic()
                rest = [line async for line in lines]
            assert time.monotonic() - started < DEADLINE_S  # the stream ended: no hang
            assert "event: answer" in rest or "event: error" in rest, rest

            started = time.monotonic()
            chat = await client.post("/v1/chat", json={"prompt": "is anyone there?"})
            later = f"{topic}-later"
            upload = await client.post("/v1/documents", files={"file": (f"{later}.md", markdown(later))})
            listing = await client.get("/v1/documents")
            ready = await client.get("/readyz")
            assert time.monotonic() - started < 4 * DEADLINE_S
            for refused in (chat, upload, listing, ready):
                assert refused.status_code == 503, (refused.request.url, refused.text)
            assert "nats" in ready.json()["missing"]

            nats.start()  # same port, same JetStream data
            await _ready_again(client)
            again = await client.post("/v1/chat", json={"prompt": f"When must the {topic} valve be closed?"})
            assert again.status_code == 200, again.text
            assert "before the pump is started" in again.json()["answer"]
            uploaded = await client.post("/v1/documents", files={"file": (f"{later}.md", markdown(later))})
            assert uploaded.status_code == 202, uploaded.text
            assert (await wait_ready(client, uploaded.json()["document_id"]))["state"] == "ready"
            job_id = await submit(client, {"kind": "text", "items": ["Is anyone there?"] * 3})
            events = await watch(system, job_id)  # the jobs' durable consumer works again
            assert (events[-1]["state"], events[-1]["done"]) == ("completed", 3)

            # NATS going away in the middle of a job: once it is back, every item is answered once
            items = 40
            job_id = await submit(client, {"kind": "text", "items": [text_prompt(n) for n in range(items)]})
            events_url = system.gateway_url.replace("http://", "ws://") + f"/v1/jobs/{job_id}/events"
            async with asyncio.timeout(RECOVERY_S), websockets.connect(events_url) as events:
                while (done := json.loads(await events.recv())["done"]) < 2:
                    pass  # the job's progress events, until two items are answered
            assert done < items  # the job is under way
            nats.stop()
            nats.start()
            await _ready_again(client)
            await watch(system, job_id)  # its events, on a new socket, until it ends
            status = (await client.get(f"/v1/jobs/{job_id}")).json()
            assert (status["state"], status["done"], status["failed"]) == ("completed", items, 0), status
            results = (await client.get(f"/v1/jobs/{job_id}/results")).text.splitlines()
            answers = [json.loads(line) for line in results]
            assert [a["item"] for a in answers] == list(range(items))
            assert all(f"Town{a['item']}" in a["text"] for a in answers)
    finally:
        nats.stop()
