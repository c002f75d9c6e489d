"""Killing the rag service mid-ingest loses nothing and duplicates nothing.

Runs its own nats-server, inference and rag processes (on the shared Triton)
so the ingest consumer's short ack wait affects no other test.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from deploy.cluster import NatsServer, ServiceProcess, free_port, service_env
from deploy.triton.local import LocalTriton
from proto.documents import DocumentState, DocumentStatus
from services.gateway.documents import Upload, submit_upload
from services.rag.chunking import chunk_document
from services.rag.documents import open_document_buckets, wait_for_state
from services.rag.parsing import ParseLimits, parse_document
from services.rag.store.lance import LanceStore

SUBMIT_TIMEOUT_S = 10.0  # one upload's object, state and ingest message
pytestmark = pytest.mark.integration

COLLECTION = "restart"
DOCUMENTS = 4
SETTLE_TIMEOUT_S = 90.0


def _document(number: int) -> bytes:
    paragraphs = [
        f"Report {number}, section {section}: the survey team counted {number * 100 + section} "
        f"migrating cranes near checkpoint {section} and logged wind, rain and visibility at dawn."
        for section in range(60)
    ]
    return ("\n\n".join(paragraphs)).encode()


def _expected_chunks(data: bytes, document_id: str) -> int:
    doc = parse_document(data, file_name="r.txt", content_type="text/plain", limits=ParseLimits())
    return len(chunk_document(doc, document_id=document_id, file_name="r.txt"))


@pytest.fixture
async def services(tmp_path: Path, triton: LocalTriton) -> AsyncIterator[tuple[NatsServer, ServiceProcess]]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    env = service_env(server.url, f"127.0.0.1:{triton.options.grpc_port}", tmp_path, free_port())
    env["RAG_INGEST_ACK_WAIT_S"] = "2"  # a killed replica's message comes back after 2 s
    inference = ServiceProcess("inference", env, tmp_path)
    rag = ServiceProcess("rag", env, tmp_path)
    try:
        inference.start()
        rag.start()
        await inference.wait_healthy(server.url)
        await rag.wait_healthy(server.url)
        yield server, rag
    finally:
        rag.stop()
        inference.stop()
        server.stop()


async def test_killed_mid_ingest_every_document_ready_once(
    services: tuple[NatsServer, ServiceProcess], tmp_path: Path
) -> None:
    server, rag = services
    client = await nats.connect(server.url)
    try:
        js = client.jetstream()
        kv, objects = await open_document_buckets(js)
        uploads = {}
        for number in range(DOCUMENTS):
            data = _document(number)
            upload = Upload(
                data=data, file_name=f"r{number}.txt", content_type="text/plain", collection=COLLECTION
            )
            status, _ = await submit_upload(js, kv, objects, upload, timeout_s=SUBMIT_TIMEOUT_S)
            uploads[status.document_id] = data

        # The first document is being ingested (the parse worker is still warming up): kill rag now.
        first = next(iter(uploads))
        ingesting = frozenset({DocumentState.INGESTING, DocumentState.READY})
        seen = await wait_for_state(kv, first, timeout_s=SETTLE_TIMEOUT_S, states=ingesting)
        assert seen.state is DocumentState.INGESTING, "ingest finished before the kill: nothing tested"
        # SIGKILL the whole process group, as a crashed container loses its parse workers too.
        os.killpg(rag.process.pid, signal.SIGKILL)
        assert rag.stop() == -signal.SIGKILL
        rag.start()
        await rag.wait_healthy(server.url)

        settled: list[DocumentStatus] = await asyncio.gather(
            *(wait_for_state(kv, document_id, timeout_s=SETTLE_TIMEOUT_S) for document_id in uploads)
        )
    finally:
        await client.close()

    store = LanceStore(str(tmp_path / "rag"))
    try:
        for status in settled:
            assert status.state is DocumentState.READY, status.reason
            expected = _expected_chunks(uploads[status.document_id], status.document_id)
            assert status.chunks == expected
            assert await store.count(COLLECTION, status.document_id) == expected
        assert await store.count(COLLECTION) == sum(status.chunks for status in settled)
    finally:
        await store.close()
    by_id = {status.document_id: status for status in settled}
    assert by_id[first].attempts >= 2  # the killed delivery came back
