"""Documents through the gateway: upload, states, dedup, search, delete, limits, tenants."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from deploy.cluster import LocalSystem, ServiceProcess, free_port, wait_gateway_ready

pytestmark = pytest.mark.integration

READY_WAIT_S = 60.0
POLL_S = 0.2  # polling interval of a state that changes in another service


def markdown(topic: str) -> bytes:
    return (
        f"# The {topic} handbook\n\n"
        f"The {topic} valve must be closed before the pump is started. "
        f"Every {topic} inspection is logged in the blue binder.\n"
    ).encode()


async def wait_ready(client: httpx.AsyncClient, document_id: str, **kwargs: Any) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_WAIT_S
    while loop.time() < deadline:
        status: dict[str, Any] = (await client.get(f"/v1/documents/{document_id}", **kwargs)).json()
        if status["state"] in ("ready", "failed"):
            return status
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"document {document_id} not ingested after {READY_WAIT_S} s")


async def test_upload_ingest_search_and_delete(system: LocalSystem) -> None:
    topic = f"zorblax{uuid.uuid4().hex[:6]}"
    files = {"file": (f"{topic}.md", markdown(topic), "text/markdown")}
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        first = await client.post("/v1/documents", files=files, data={"collection": "manuals"})
        assert first.status_code == 202, first.text
        queued = first.json()
        assert queued["state"] == "queued" and queued["collection"] == "manuals"
        again = await client.post("/v1/documents", files=files, data={"collection": "manuals"})
        assert again.status_code == 200
        assert again.json()["document_id"] == queued["document_id"]

        status = await wait_ready(client, queued["document_id"])
        assert status["state"] == "ready", status
        assert status["chunks"] >= 1
        listed = (await client.get("/v1/documents", params={"collection": "manuals"})).json()["documents"]
        assert queued["document_id"] in [d["document_id"] for d in listed]

        found = await client.post(
            "/v1/search",
            json={"query": f"when is the {topic} valve closed?", "k": 3, "collection": "manuals"},
        )
        assert found.status_code == 200, found.text
        best = found.json()["passages"][0]
        assert best["document_id"] == queued["document_id"]
        assert best["file_name"] == f"{topic}.md"
        assert topic in best["text"] and isinstance(best["score"], float)

        removed = await client.delete(f"/v1/documents/{queued['document_id']}")
        assert removed.status_code == 200, removed.text
        assert removed.json()["chunks_removed"] >= 1
        gone = await client.get(f"/v1/documents/{queued['document_id']}")
        assert gone.status_code == 404


async def test_uploads_that_are_refused(system: LocalSystem) -> None:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        png = await client.post(
            "/v1/documents", files={"file": ("a.png", b"\x89PNG\r\n\x1a\n" + bytes(64), "image/png")}
        )
        zip_ = await client.post(
            "/v1/documents", files={"file": ("a.docx", b"PK\x03\x04" + bytes(64), "application/zip")}
        )
        empty = await client.post("/v1/documents", files={"file": ("a.txt", b"", "text/plain")})
        bad_collection = await client.post(
            "/v1/documents", files={"file": ("a.txt", b"hi", "text/plain")}, data={"collection": "../x"}
        )
        missing = await client.get(f"/v1/documents/{'0' * 32}")
        nonsense = await client.get("/v1/documents/not-an-id")
    assert png.status_code == 415 and "accepted" in png.json()["detail"]
    assert zip_.status_code == 415
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]
    assert bad_collection.status_code == 400
    assert missing.status_code == 404 and nonsense.status_code == 404


@pytest.fixture
async def keyed_gateway(system: LocalSystem, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A second gateway with two API keys and a 4 kB upload limit."""
    port = free_port()
    env = {
        **system.env,
        "GATEWAY_PORT": str(port),
        "GATEWAY_API_KEYS": "tenant-a,tenant-b",
        "GATEWAY_MAX_UPLOAD_BYTES": "4000",
    }
    gateway = ServiceProcess("gateway", env, tmp_path_factory.mktemp("tenants"))
    gateway.start()
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_gateway_ready(url)
        yield url
    finally:
        gateway.stop()


async def test_size_limit_and_tenants(keyed_gateway: str) -> None:
    a = {"Authorization": "Bearer tenant-a"}
    b = {"Authorization": "Bearer tenant-b"}
    topic = f"quuxle{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=keyed_gateway, timeout=30) as client:
        too_big = await client.post(
            "/v1/documents", files={"file": ("big.txt", b"x" * 5000, "text/plain")}, headers=a
        )
        far_too_big = await client.post(
            "/v1/documents", files={"file": ("huge.txt", b"x" * 200_000, "text/plain")}, headers=a
        )
        assert too_big.status_code == 413 and "4000" in too_big.json()["detail"]
        assert far_too_big.status_code == 413 and "limit" in far_too_big.json()["detail"]

        files = {"file": (f"{topic}.md", markdown(topic), "text/markdown")}
        uploaded = await client.post("/v1/documents", files=files, headers=a)
        assert uploaded.status_code == 202, uploaded.text
        document_id = uploaded.json()["document_id"]
        assert uploaded.json()["collection"] == "default"  # the tenant prefix is never shown
        assert (await wait_ready(client, document_id, headers=a))["state"] == "ready"

        assert (await client.get(f"/v1/documents/{document_id}", headers=b)).status_code == 404
        assert (await client.delete(f"/v1/documents/{document_id}", headers=b)).status_code == 404
        listed_b = (await client.get("/v1/documents", headers=b)).json()["documents"]
        assert document_id not in [d["document_id"] for d in listed_b]
        query = {"query": f"when is the {topic} valve closed?", "k": 5}
        hits_a = (await client.post("/v1/search", json=query, headers=a)).json()["passages"]
        hits_b = (await client.post("/v1/search", json=query, headers=b)).json()["passages"]
        assert document_id in [hit["document_id"] for hit in hits_a]
        assert document_id not in [hit["document_id"] for hit in hits_b]

        chat_b = (await client.post("/v1/chat", json={"prompt": f"{topic} valve?"}, headers=b)).json()
        assert document_id not in [s.get("document_id") for s in chat_b["sources"]]
        chat_a = (await client.post("/v1/chat", json={"prompt": f"{topic} valve?"}, headers=a)).json()
        assert document_id in [s.get("document_id") for s in chat_a["sources"]]


async def test_a_failed_document_uploaded_again_is_ingested_again(system: LocalSystem) -> None:
    """A retry gets a new message id: JetStream's duplicate window must not swallow it."""
    corrupt = b"%PDF-1.7\n" + uuid.uuid4().bytes * 64 + b"\n%%EOF"
    files = {"file": ("broken.pdf", corrupt, "application/pdf")}
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        first = await client.post("/v1/documents", files=files, data={"collection": "retries"})
        assert first.status_code == 202, first.text
        document_id = first.json()["document_id"]
        failed = await wait_ready(client, document_id)
        assert failed["state"] == "failed" and failed["reason"]
        again = await client.post("/v1/documents", files=files, data={"collection": "retries"})
        assert again.status_code == 202, again.text
        assert again.json()["state"] == "queued"
        retried = await wait_ready(client, document_id)
    assert retried["state"] == "failed"
    assert retried["updated_at"] > failed["updated_at"]


async def test_a_deleted_document_uploaded_again_is_ingested_again(system: LocalSystem) -> None:
    """Within JetStream's duplicate window too: the new upload is not taken for the old message."""
    topic = f"quorvex{uuid.uuid4().hex[:6]}"
    files = {"file": (f"{topic}.md", markdown(topic), "text/markdown")}
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        first = await client.post("/v1/documents", files=files, data={"collection": "reuploads"})
        assert first.status_code == 202, first.text
        document_id = first.json()["document_id"]
        assert (await wait_ready(client, document_id))["state"] == "ready"
        assert (await client.delete(f"/v1/documents/{document_id}")).status_code == 200
        again = await client.post("/v1/documents", files=files, data={"collection": "reuploads"})
        assert again.status_code == 202, again.text
        assert again.json()["document_id"] == document_id
        assert (await wait_ready(client, document_id))["state"] == "ready"
        found = await client.post(
            "/v1/search", json={"query": f"{topic} valve", "k": 1, "collection": "reuploads"}
        )
    assert found.status_code == 200, found.text
    assert [p["document_id"] for p in found.json()["passages"]] == [document_id]


async def test_a_job_is_its_owners_alone(keyed_gateway: str) -> None:
    a = {"Authorization": "Bearer tenant-a"}
    b = {"Authorization": "Bearer tenant-b"}
    async with httpx.AsyncClient(base_url=keyed_gateway, timeout=30) as client:
        submitted = await client.post("/v1/jobs", json={"kind": "text", "items": ["Anyone?"]}, headers=a)
        assert submitted.status_code == 202, submitted.text
        job = f"/v1/jobs/{submitted.json()['job_id']}"
        for path in (job, f"{job}/results", f"{job}/items/0"):
            assert (await client.get(path, headers=b)).status_code == 404, path
        assert (await client.delete(job, headers=b)).status_code == 404
        assert (await client.get(job, headers=a)).status_code == 200
    ws_url = keyed_gateway.replace("http://", "ws://") + f"{job}/events"
    async with websockets.connect(ws_url, additional_headers=b) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


async def test_tokens_are_counted_per_tenant(keyed_gateway: str) -> None:
    a = {"Authorization": "Bearer tenant-a"}
    scope = "k" + hashlib.sha256(b"tenant-a").hexdigest()[:12]
    async with httpx.AsyncClient(base_url=keyed_gateway, timeout=30) as client:
        answer = (await client.post("/v1/chat", json={"prompt": "Is anyone there?"}, headers=a)).json()
        metrics = (await client.get("/metrics")).text
    counted = {
        kind: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        for kind in ("prompt", "completion")
        if line.startswith(f'gateway_tokens_total{{kind="{kind}",tenant="{scope}"}}')
        or line.startswith(f'gateway_tokens_total{{tenant="{scope}",kind="{kind}"}}')
    }
    assert counted == {"prompt": answer["prompt_tokens"], "completion": answer["completion_tokens"]}
    assert counted["prompt"] > 0 and counted["completion"] > 0


async def test_search_without_inference_falls_back_to_keywords(system: LocalSystem) -> None:
    topic = f"wombix{uuid.uuid4().hex[:6]}"
    files = {"file": (f"{topic}.md", markdown(topic), "text/markdown")}
    query = {"query": f"when is the {topic} valve closed?", "k": 3, "collection": "fallback"}
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        uploaded = await client.post("/v1/documents", files=files, data={"collection": "fallback"})
        assert (await wait_ready(client, uploaded.json()["document_id"]))["state"] == "ready"
        inference = system.services["inference"]
        inference.stop()
        try:
            found = await client.post("/v1/search", json=query)
            vector_only = await client.post("/v1/search", json={**query, "mode": "vector"})
        finally:
            inference.start()
            await inference.wait_healthy(system.nats.url)
        again = (await client.post("/v1/search", json=query)).json()
    assert found.status_code == 200, found.text
    assert found.json()["passages"][0]["document_id"] == uploaded.json()["document_id"]
    assert found.json()["degraded"].startswith("keyword search only")
    assert vector_only.status_code == 503
    assert again["degraded"] == "" and again["passages"][0]["document_id"] == uploaded.json()["document_id"]
