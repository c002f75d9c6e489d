"""The gateway queueing uploads on a real nats-server (no rag: the ingest stream is only read here).

The whole path, with rag ingesting, is in tests/integration/test_gateway_documents.py.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import nats
import pytest
from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from deploy.cluster import NatsServer
from proto.common import encode
from proto.documents import OPEN_SCOPE, DocumentState, document_id_for
from proto.subjects import INGEST_STREAM
from runtime.bus import make_broker
from runtime.errors import Unavailable
from services.gateway.documents import DocumentService, Upload
from services.gateway.tenancy import Tenant


@dataclass
class Rig:
    documents: DocumentService
    js: JetStreamContext

    async def messages(self) -> int:
        """Ingest messages waiting in the stream (nobody consumes them here)."""
        return (await self.js.stream_info(INGEST_STREAM)).state.messages


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    broker: NatsBroker = make_broker(server.url, "gateway-test")
    await broker.connect()
    client = await nats.connect(server.url)
    try:
        yield Rig(DocumentService(broker, timeout_s=5), client.jetstream())
    finally:
        await client.close()
        await broker.stop()
        server.stop()


def _upload(text: str = "The pump is started after the valve is closed.") -> Upload:
    return Upload(data=text.encode(), file_name="notes.txt", content_type="text/plain", collection="c")


async def test_the_same_file_uploaded_at_once_is_queued_once(rig: Rig) -> None:
    results = await asyncio.gather(*(rig.documents.store(_upload()) for _ in range(4)))
    assert sum(queued for _, queued in results) == 1
    assert len({status.document_id for status, _ in results}) == 1
    assert await rig.messages() == 1


async def test_each_upload_after_a_delete_or_a_failure_gets_a_message(rig: Rig) -> None:
    status, _ = await rig.documents.store(_upload())
    states = await rig.js.key_value("document-state")
    await states.purge(status.document_id)  # what rag's delete does to the state
    again, queued = await rig.documents.store(_upload())
    assert queued and again.state is DocumentState.QUEUED
    assert await rig.messages() == 2  # not dropped as a duplicate of the first one


async def test_an_upload_whose_message_cannot_be_published_ends_failed_not_queued(rig: Rig) -> None:
    await rig.documents.store(_upload("A first upload opens the buckets and the stream."))
    await rig.js.delete_stream(INGEST_STREAM)  # publishing now fails: no stream takes the subject
    upload = _upload()
    with pytest.raises(Unavailable):
        await rig.documents.store(upload)
    document_id = document_id_for(upload.collection, hashlib.sha256(upload.data).hexdigest())
    status = await rig.documents.status(document_id)
    assert status.state is DocumentState.FAILED and "could not be queued" in status.reason


async def test_listing_reads_every_live_state_newest_first(rig: Rig) -> None:
    assert await rig.documents.all(OPEN_SCOPE) == []
    stored = [(await rig.documents.store(_upload(f"Note number {n}.")))[0] for n in range(3)]
    states = await rig.js.key_value("document-state")
    await states.purge(stored[1].document_id)
    listed = await rig.documents.all(OPEN_SCOPE)
    assert [s.document_id for s in listed] == [stored[2].document_id, stored[0].document_id]


async def test_listing_reads_the_tenants_states_and_those_from_before_scopes_only(rig: Rig) -> None:
    mine = Tenant("a" * 64)
    theirs = Tenant("b" * 64)
    for tenant, n in [(mine, 0), (theirs, 1), (theirs, 2)]:
        upload = _upload(f"Note number {n}.")
        upload.collection, upload.scope = tenant.collection("c"), tenant.scope
        await rig.documents.store(upload)
    states = await rig.js.key_value("document-state")
    old = msgspec.structs.replace(
        (await rig.documents.all(mine.scope))[0], document_id="0" * 32, file_name="old.txt"
    )
    await states.put(old.document_id, encode(old))  # a bare key: stored before ids had a scope
    listed = await rig.documents.all(mine.scope)
    assert [s.file_name for s in listed] == ["notes.txt", "old.txt"]
    assert {s.document_id.split(".")[0] for s in listed} == {mine.scope, "0" * 32}
    assert len(await rig.documents.all(theirs.scope)) == 3  # theirs, and the bare one (filtered later)
    assert (await rig.documents.status("0" * 32)).file_name == "old.txt"
