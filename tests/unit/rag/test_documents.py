"""`DocumentStates` on the session's real nats-server: a state it cannot read counts as none, and says so."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js.kv import KeyValue
from structlog.testing import capture_logs

from deploy.cluster import NatsServer
from proto.documents import DocumentState, DocumentStatus
from services.rag.documents import DocumentStates


@pytest.fixture
async def bucket(nats_server: NatsServer) -> AsyncIterator[KeyValue]:
    client = await nats.connect(nats_server.url)
    js = client.jetstream()
    name = f"test-document-state-{uuid.uuid4().hex[:8]}"
    yield await js.create_key_value(bucket=name)
    await js.delete_key_value(name)
    await client.close()


async def test_a_state_round_trips_and_a_missing_one_is_none(bucket: KeyValue) -> None:
    states = DocumentStates(bucket)
    assert await states.entry("d1") == (None, None)
    status = DocumentStatus(
        document_id="d1",
        collection="team-a",
        file_name="notes.txt",
        content_type="text/plain",
        size=3,
        sha256="0" * 64,
        state=DocumentState.QUEUED,
    )
    stored = await states.put(status)
    assert await states.get("d1") == stored


async def test_an_unreadable_state_is_logged_and_taken_as_none(bucket: KeyValue) -> None:
    revision = await bucket.put("d2", b"written by another version")
    with capture_logs() as logs:
        assert await DocumentStates(bucket).entry("d2") == (None, revision)
    assert [(log["event"], log["document_id"]) for log in logs] == [("document_state_unreadable", "d2")]
