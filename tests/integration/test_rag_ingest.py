"""Durable ingestion, retrieval and deletion through real NATS, Triton and the rag service."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import ObjectNotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from deploy.cluster import LocalSystem
from proto.common import ErrorReply, decode, encode
from proto.context import RetrieveReply, RetrieveRequest
from proto.documents import (
    CollectionVectors,
    DeleteDocument,
    DocumentDeleted,
    DocumentState,
    DocumentStatus,
    IngestDocument,
)
from proto.inference import EmbedReply, EmbedRequest
from proto.subjects import (
    COLLECTION_VECTORS_BUCKET,
    DOCUMENT_DELETE,
    EMBED,
    INGEST_DEAD_LETTER,
    RETRIEVE,
)
from services.gateway.documents import Upload, submit_upload
from services.rag.documents import DocumentStates, open_document_buckets, wait_for_state
from services.rag.ingest import FAILURE_REASON_HEADER
from services.rag.store import StoredChunk
from services.rag.store.lance import LanceStore

SUBMIT_TIMEOUT_S = 10.0  # one upload's object, state and ingest message
pytestmark = pytest.mark.integration

SETTLE_TIMEOUT_S = 60.0

HANDBOOK = """# Field handbook

## Bees

The apiary behind the north barn holds twelve hives of Carniolan honey bees.
Each hive is inspected every nine days between April and September for queen cells and mites.

## Orchard

The orchard has forty-one pear trees of the Conference variety, pruned in February.
Codling moth traps hang in every fifth tree from May onwards.

## Boiler

The boiler room key is kept in the grey lockbox beside the kitchen door; the code is the farm's founding year.
"""


@dataclass
class Bus:
    client: Client
    kv: KeyValue
    objects: ObjectStore

    async def submit(self, data: bytes, file_name: str, content_type: str, collection: str) -> DocumentStatus:
        js = self.client.jetstream()
        upload = Upload(data=data, file_name=file_name, content_type=content_type, collection=collection)
        status, _ = await submit_upload(js, self.kv, self.objects, upload, timeout_s=SUBMIT_TIMEOUT_S)
        return status

    async def settled(self, document_id: str) -> DocumentStatus:
        return await wait_for_state(self.kv, document_id, timeout_s=SETTLE_TIMEOUT_S)

    async def retrieve(self, query: str, collection: str, k: int = 5, mode: str = "hybrid") -> RetrieveReply:
        answer = await self.ask_retrieve(query, collection, k, mode)
        assert isinstance(answer, RetrieveReply), answer
        return answer

    async def ask_retrieve(
        self, query: str, collection: str, k: int = 5, mode: str = "hybrid"
    ) -> RetrieveReply | ErrorReply:
        request = RetrieveRequest(query=query, collection=collection, k=k, mode=mode)
        reply = await self.client.request(RETRIEVE, encode(request), timeout=10)
        answer: RetrieveReply | ErrorReply = decode(reply.data, RetrieveReply | ErrorReply)
        return answer

    async def collection_model(self, collection: str) -> CollectionVectors:
        kv = await self.client.jetstream().key_value(COLLECTION_VECTORS_BUCKET)
        return decode((await kv.get(collection)).value or b"", CollectionVectors)


@pytest.fixture
async def bus(system: LocalSystem) -> AsyncIterator[Bus]:
    client = await nats.connect(system.nats.url)
    kv, objects = await open_document_buckets(client.jetstream())
    yield Bus(client, kv, objects)
    await client.close()


@pytest.fixture
def collection() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def chunk_store(system: LocalSystem) -> AsyncIterator[LanceStore]:
    """The rag service's LanceDB folder, read from this process."""
    store = LanceStore(system.env["RAG_DATA_DIR"])
    yield store
    await store.close()


async def test_upload_becomes_ready_and_its_passage_is_retrieved(
    bus: Bus, collection: str, chunk_store: LanceStore
) -> None:
    queued = await bus.submit(HANDBOOK.encode(), "handbook.md", "text/markdown", collection)
    assert queued.state is DocumentState.QUEUED
    status = await bus.settled(queued.document_id)
    assert status.state is DocumentState.READY, status.reason
    assert status.chunks >= 1 and status.attempts == 1
    assert await chunk_store.count(collection, queued.document_id) == status.chunks

    reply = await bus.retrieve("where is the key of the boiler room kept", collection)
    best = reply.passages[0]
    assert best.document_id == queued.document_id and best.file_name == "handbook.md"
    assert "grey lockbox" in best.text
    assert best.heading_path == ["Field handbook", "Boiler"]
    assert HANDBOOK.find("The boiler room key") >= 0 and best.char_end > best.char_start

    # The collection records the model inference embedded it with.
    response = await bus.client.request(EMBED, encode(EmbedRequest(texts=["a"])), timeout=30)
    embed_model = decode(response.data, EmbedReply).model
    assert await bus.collection_model(collection) == CollectionVectors(
        collection=collection, model=embed_model, dimensions=384
    )


async def test_a_collection_of_another_models_vectors_refuses_vector_search_and_uploads(
    bus: Bus, collection: str, chunk_store: LanceStore
) -> None:
    # A collection ingested when `embed` ran another model (say fp32, before the switch to int8).
    old = CollectionVectors(collection=collection, model="all-MiniLM-L6-v2-old", dimensions=384)
    kv = await bus.client.jetstream().key_value(COLLECTION_VECTORS_BUCKET)
    await kv.put(collection, encode(old))
    text = "The boiler room key is kept in the grey lockbox."
    chunk = StoredChunk(
        chunk_id="old-0",
        document_id="old",
        collection=collection,
        file_name="old.txt",
        index=0,
        text=text,
        page=None,
        heading_path=(),
        char_start=0,
        char_end=len(text),
        vector=[1 / 384**0.5] * 384,
    )
    await chunk_store.upsert([chunk])

    refused = await bus.ask_retrieve("where is the boiler room key", collection)
    assert isinstance(refused, ErrorReply) and refused.code == "unavailable"
    assert "'all-MiniLM-L6-v2-old'" in refused.detail and "mode 'bm25'" in refused.detail
    keyword = await bus.retrieve("where is the boiler room key", collection, mode="bm25")
    assert [p.document_id for p in keyword.passages] == ["old"]

    queued = await bus.submit(HANDBOOK.encode(), "handbook.md", "text/markdown", collection)
    failed = await bus.settled(queued.document_id)
    assert failed.state is DocumentState.FAILED and failed.attempts == 1
    assert "'all-MiniLM-L6-v2-old'" in failed.reason
    assert await chunk_store.count(collection, queued.document_id) == 0
    assert await bus.collection_model(collection) == old


async def test_the_service_settles_a_collection_once_uploads_stop(
    bus: Bus, collection: str, system: LocalSystem
) -> None:
    import lancedb

    first = await bus.submit(HANDBOOK.encode(), "handbook.md", "text/markdown", collection)
    second = await bus.submit(
        b"Plain notes about the weather station.", "notes.txt", "text/plain", collection
    )
    for queued in (first, second):
        assert (await bus.settled(queued.document_id)).state is DocumentState.READY
    # Read with LanceDB itself: a LanceStore here would do its own upkeep on opening the table.
    table = await (await lancedb.connect_async(system.env["RAG_DATA_DIR"])).open_table(collection)
    deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT_S
    while True:  # the service settles the table RAG_SETTLE_AFTER_S after its last write
        await table.checkout_latest()  # type: ignore[no-untyped-call]
        stats = await table.index_stats("text_idx")
        if stats is not None and stats.num_unindexed_rows == 0:
            break
        assert asyncio.get_running_loop().time() < deadline, f"still unindexed: {stats}"
        await asyncio.sleep(0.1)  # the poll interval: index state has no event to await
    assert stats.num_indexed_rows == await table.count_rows() > 0


async def test_same_file_twice_is_one_document(bus: Bus, collection: str, chunk_store: LanceStore) -> None:
    data = HANDBOOK.replace("twelve", "thirteen").encode()
    first, second = await asyncio.gather(
        bus.submit(data, "a.md", "text/markdown", collection),
        bus.submit(data, "a.md", "text/markdown", collection),
    )
    assert first.document_id == second.document_id
    status = await bus.settled(first.document_id)
    assert status.state is DocumentState.READY, status.reason
    again = await bus.submit(data, "renamed.md", "text/markdown", collection)
    assert again.document_id == first.document_id and again.state is DocumentState.READY
    assert await chunk_store.count(collection) == status.chunks
    assert status.attempts == 1


async def test_corrupt_pdf_fails_is_dead_lettered_and_work_goes_on(bus: Bus, collection: str) -> None:
    dead: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_dead(message: Msg) -> None:
        await dead.put(message)

    subscription = await bus.client.subscribe(INGEST_DEAD_LETTER, cb=on_dead)
    try:
        corrupt = b"%PDF-1.7\n" + uuid.uuid4().bytes * 40 + b"\n%%EOF"
        bad = await bus.submit(corrupt, "broken.pdf", "application/pdf", collection)
        notes = b"Plain notes about the weather station."
        good = await bus.submit(notes, "notes.txt", "text/plain", collection)
        failed = await bus.settled(bad.document_id)
        assert failed.state is DocumentState.FAILED
        assert failed.reason and failed.attempts == 1  # a parse error is not retried
        message = await asyncio.wait_for(dead.get(), SETTLE_TIMEOUT_S)
        assert decode(message.data, IngestDocument).document_id == bad.document_id
        assert message.headers is not None and message.headers[FAILURE_REASON_HEADER] == failed.reason
        assert (await bus.settled(good.document_id)).state is DocumentState.READY
    finally:
        await subscription.unsubscribe()


async def test_delete_removes_chunks_object_and_state(
    bus: Bus, collection: str, chunk_store: LanceStore
) -> None:
    lamp = b"The lighthouse lamp is cleaned on Sundays."
    keep = await bus.submit(lamp, "keep.txt", "text/plain", collection)
    gone = await bus.submit(HANDBOOK.encode(), "handbook.md", "text/markdown", collection)
    assert (await bus.settled(keep.document_id)).state is DocumentState.READY
    status = await bus.settled(gone.document_id)
    assert status.state is DocumentState.READY

    request = DeleteDocument(document_id=gone.document_id, collection=collection)
    response = await bus.client.request(DOCUMENT_DELETE, encode(request), timeout=10)
    reply: DocumentDeleted = decode(response.data, DocumentDeleted)
    assert reply.chunks_removed == status.chunks

    found = await bus.retrieve("boiler room key lockbox bees orchard", collection, k=10)
    assert found.passages and all(p.document_id == keep.document_id for p in found.passages)
    assert await chunk_store.count(collection, gone.document_id) == 0
    assert await DocumentStates(bus.kv).get(gone.document_id) is None
    with pytest.raises(ObjectNotFoundError):
        await bus.objects.get_info(gone.document_id)

    again = await bus.client.request(DOCUMENT_DELETE, encode(request), timeout=10)
    error: ErrorReply = decode(again.data, ErrorReply)
    assert error.code == "not_found"
