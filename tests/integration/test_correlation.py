"""One chat's correlation id, followed through the logs of gateway, rag and inference."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from deploy.cluster import LocalSystem
from tests.integration.test_gateway_documents import markdown, wait_ready

pytestmark = pytest.mark.integration

LOG_WAIT_S = 10.0
POLL_S = 0.1  # polling interval of a log another process writes


def _handled(system: LocalSystem, service: str, correlation_id: str) -> set[str]:
    """The subjects whose messages `service` logged as handled under `correlation_id`."""
    subjects = set()
    for line in system.services[service].log().splitlines():
        try:
            record: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        if record.get("correlation_id") == correlation_id and record.get("event") == "message handled":
            subjects.add(str(record.get("subject")))
    return subjects


async def _wait_for_subjects(
    system: LocalSystem, service: str, correlation_id: str, expected: set[str]
) -> set[str]:
    """The subjects logged once all `expected` are (or the deadline passed): a log sends no event."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LOG_WAIT_S
    while True:
        seen = _handled(system, service, correlation_id)
        if seen >= expected or loop.time() >= deadline:
            return seen
        await asyncio.sleep(POLL_S)


async def test_a_chat_s_correlation_id_reaches_rag_and_inference(system: LocalSystem) -> None:
    topic = f"quorvane{uuid.uuid4().hex[:6]}"
    request_id = f"trace-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=60) as client:
        files = {"file": (f"{topic}.md", markdown(topic), "text/markdown")}
        uploaded = await client.post("/v1/documents", files=files, data={"collection": "traced"})
        assert uploaded.status_code == 202, uploaded.text
        assert (await wait_ready(client, uploaded.json()["document_id"]))["state"] == "ready"
        question = f"When must the {topic} valve be closed?"  # a new query: its embedding is not cached
        response = await client.post(
            "/v1/chat",
            json={"prompt": question, "collection": "traced", "use_web": False},
            headers={"X-Request-ID": request_id},
        )
    assert response.status_code == 200, response.text
    chat_id = response.json()["id"]  # the client's request id, made unique to this chat
    assert chat_id.startswith(request_id)
    assert response.json()["sources"], response.json()

    # gateway -> rag (retrieve), rag -> inference (the query's embedding), gateway -> inference (generate)
    rag = await _wait_for_subjects(system, "rag", chat_id, {"retrieve"})
    inference = await _wait_for_subjects(
        system, "inference", chat_id, {"inference.embed", "inference.generate"}
    )
    assert "retrieve" in rag, system.services["rag"].log()[-2000:]
    assert {"inference.embed", "inference.generate"} <= inference, system.services["inference"].log()[-2000:]
