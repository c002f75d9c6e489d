"""`Ingestor` on a real nats-server, a real LanceDB folder and the real parse pool.

Only the embedder is a stand-in (the inference service and Triton are
exercised by tests/integration/test_rag_*.py): it gives deterministic
vectors and can be told to fail, which is how transient errors are made.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from deploy.cluster import NatsServer
from proto.common import decode, encode
from proto.documents import DocumentState, DocumentStatus, IngestDocument
from proto.streams import INGEST_STREAM_CONFIG
from proto.subjects import INGEST, INGEST_DEAD_LETTER, INGEST_STREAM
from runtime.jetstream import ensure_stream
from services.gateway.documents import Upload, submit_upload
from services.rag.chunking import chunk_id_for
from services.rag.collection_models import CollectionModels
from services.rag.documents import DocumentStates, open_document_buckets
from services.rag.embeddings import Embeddings, EmbeddingUnavailable
from services.rag.handlers import INGEST_DURABLE, ingest_consumer_config
from services.rag.ingest import FAILURE_REASON_HEADER, Ingestor, IngestOutcome
from services.rag.parse_pool import ParsePool
from services.rag.settings import RagSettings
from services.rag.store import StoredChunk
from services.rag.store.lance import LanceStore

SUBMIT_TIMEOUT_S = 10.0  # one upload's object, state and ingest message
COLLECTION = "unit"
TEXT = b"Ingestion notes.\n\nThe ferry leaves the harbour at seven and returns at noon."


class ScriptedEmbedder:
    """Deterministic 8-d unit vectors of `model`; the first `failures` calls raise EmbeddingUnavailable."""

    def __init__(self, failures: int = 0, model: str = "scripted-8d") -> None:
        self.failures = failures
        self.model = model
        self.calls = 0

    async def embed(self, texts: Sequence[str], *, timeout_s: float | None = None) -> Embeddings:
        self.calls += 1
        if self.calls <= self.failures:
            raise EmbeddingUnavailable("inference did not embed (TimeoutError)")
        return Embeddings(model=self.model, vectors=[_unit_vector(text) for text in texts])


def _unit_vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()[:8]
    norm = math.sqrt(sum(b * b for b in digest)) or 1.0
    return [b / norm for b in digest]


@dataclass
class Rig:
    client: Client
    js: JetStreamContext
    kv: KeyValue
    settings: RagSettings
    store: LanceStore
    pool: ParsePool
    models: CollectionModels

    def ingestor(self, embedder: ScriptedEmbedder, objects: ObjectStore) -> Ingestor:
        return Ingestor(
            self.settings,
            store=self.store,
            embedder=embedder,
            models=self.models,
            pool=self.pool,
            states=DocumentStates(self.kv),
            objects=objects,
            dead_letters=self.client,
        )


@pytest.fixture(scope="module")
def parse_pool() -> Iterator[ParsePool]:
    pool = ParsePool(RagSettings())
    yield pool
    pool.close()


@pytest.fixture
async def rig(tmp_path: Path, parse_pool: ParsePool) -> AsyncIterator[Rig]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    client = await nats.connect(server.url)
    settings = RagSettings(
        data_dir=str(tmp_path / "lance"),
        ingest_max_deliver=2,
        ingest_retry_backoff_s=0.05,
        ingest_ack_wait_s=0.5,  # a delivery nobody acks (a crashed replica) comes back quickly
    )
    js = client.jetstream()
    await ensure_stream(js, INGEST_STREAM_CONFIG)
    kv, _ = await open_document_buckets(js)
    store = LanceStore(settings.data_dir)
    models = CollectionModels(store)
    await models.start(js)
    try:
        yield Rig(client, js, kv, settings, store, parse_pool, models)
    finally:
        await store.close()
        await client.close()
        server.stop()


async def _deliver(rig: Rig, ingestor: Ingestor) -> str:
    """Fetch the next ingest message from the durable consumer and hand it to the ingestor."""
    (message,) = await (await _subscription(rig)).fetch(1, timeout=10)
    return await ingestor.handle(decode(message.data, IngestDocument), message)


async def _subscription(rig: Rig) -> JetStreamContext.PullSubscription:
    return await rig.js.pull_subscribe(
        INGEST, durable=INGEST_DURABLE, stream=INGEST_STREAM, config=ingest_consumer_config(rig.settings)
    )


async def _submit(rig: Rig, data: bytes, file_name: str, content_type: str) -> str:
    _, objects = await open_document_buckets(rig.js)
    upload = Upload(data=data, file_name=file_name, content_type=content_type, collection=COLLECTION)
    status, _ = await submit_upload(rig.js, rig.kv, objects, upload, timeout_s=SUBMIT_TIMEOUT_S)
    return status.document_id


async def test_transient_embedding_failure_is_retried_then_ready(rig: Rig) -> None:
    _, objects = await open_document_buckets(rig.js)
    ingestor = rig.ingestor(ScriptedEmbedder(failures=1), objects)
    document_id = await _submit(rig, TEXT, "notes.txt", "text/plain")
    assert await _deliver(rig, ingestor) == IngestOutcome.RETRY
    waiting = await DocumentStates(rig.kv).get(document_id)
    assert waiting is not None and waiting.state is DocumentState.QUEUED
    assert waiting.reason.startswith("retrying: inference did not embed")
    assert await _deliver(rig, ingestor) == IngestOutcome.READY
    ready = await DocumentStates(rig.kv).get(document_id)
    assert ready is not None and ready.state is DocumentState.READY and ready.attempts == 2
    assert await rig.store.count(COLLECTION, document_id) == ready.chunks >= 1


async def test_last_delivery_of_a_transient_failure_is_dead_lettered(rig: Rig) -> None:
    dead: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_dead(message: Msg) -> None:
        await dead.put(message)

    await rig.client.subscribe(INGEST_DEAD_LETTER, cb=on_dead)
    _, objects = await open_document_buckets(rig.js)
    ingestor = rig.ingestor(ScriptedEmbedder(failures=10), objects)
    document_id = await _submit(rig, TEXT, "notes.txt", "text/plain")
    assert await _deliver(rig, ingestor) == IngestOutcome.RETRY
    assert await _deliver(rig, ingestor) == IngestOutcome.FAILED
    failed = await DocumentStates(rig.kv).get(document_id)
    assert failed is not None and failed.state is DocumentState.FAILED
    assert failed.reason.startswith("gave up after 2 tries: inference did not embed")
    message = await asyncio.wait_for(dead.get(), 10)
    assert decode(message.data, IngestDocument).document_id == document_id
    assert message.headers is not None and message.headers[FAILURE_REASON_HEADER] == failed.reason
    info = await rig.js.stream_info(INGEST_STREAM)
    assert info.state.messages == 0  # acked: nothing left to redeliver


async def test_unsupported_file_fails_at_once(rig: Rig) -> None:
    _, objects = await open_document_buckets(rig.js)
    embedder = ScriptedEmbedder()
    document_id = await _submit(rig, b"\x89PNG\r\n\x1a\n" + bytes(64), "photo.png", "image/png")
    assert await _deliver(rig, rig.ingestor(embedder, objects)) == IngestOutcome.FAILED
    failed = await DocumentStates(rig.kv).get(document_id)
    assert failed is not None and failed.state is DocumentState.FAILED and failed.attempts == 1
    assert failed.reason and embedder.calls == 0


async def test_chunks_left_by_an_earlier_attempt_are_removed(rig: Rig) -> None:
    _, objects = await open_document_buckets(rig.js)
    document_id = await _submit(rig, TEXT, "notes.txt", "text/plain")
    stale = [
        StoredChunk(
            chunk_id=chunk_id_for(document_id, index),
            document_id=document_id,
            collection=COLLECTION,
            file_name="notes.txt",
            index=index,
            text=f"stale chunk {index}",
            page=None,
            heading_path=(),
            char_start=0,
            char_end=5,
            vector=_unit_vector(str(index)),
        )
        for index in range(12)
    ]
    await rig.store.upsert(stale)
    assert await _deliver(rig, rig.ingestor(ScriptedEmbedder(), objects)) == IngestOutcome.READY
    ready = await DocumentStates(rig.kv).get(document_id)
    assert ready is not None and ready.chunks < len(stale)
    assert await rig.store.count(COLLECTION, document_id) == ready.chunks


async def test_redelivery_of_a_ready_document_is_acked_without_work(rig: Rig) -> None:
    _, objects = await open_document_buckets(rig.js)
    embedder = ScriptedEmbedder()
    ingestor = rig.ingestor(embedder, objects)
    document_id = await _submit(rig, TEXT, "notes.txt", "text/plain")
    assert await _deliver(rig, ingestor) == IngestOutcome.READY
    # The same message again (as after a crash between `ready` and the ack).
    status = await DocumentStates(rig.kv).get(document_id)
    assert status is not None
    await rig.js.publish(INGEST, _ingest_message(status), headers={"Nats-Msg-Id": "again"})
    calls = embedder.calls
    assert await _deliver(rig, ingestor) == IngestOutcome.ALREADY_READY
    assert embedder.calls == calls


async def test_document_deleted_before_ingest_is_dropped(rig: Rig) -> None:
    _, objects = await open_document_buckets(rig.js)
    document_id = await _submit(rig, TEXT, "notes.txt", "text/plain")
    await DocumentStates(rig.kv).delete(document_id)
    assert await _deliver(rig, rig.ingestor(ScriptedEmbedder(), objects)) == IngestOutcome.GONE
    assert await rig.store.count(COLLECTION, document_id) == 0


def _ingest_message(status: DocumentStatus) -> bytes:
    return encode(
        IngestDocument(
            document_id=status.document_id,
            collection=status.collection,
            file_name=status.file_name,
            content_type=status.content_type,
            object_name=status.document_id,
            sha256=status.sha256,
            size=status.size,
        )
    )


async def test_a_document_whose_tries_all_crashed_ends_failed(rig: Rig) -> None:
    _, objects = await open_document_buckets(rig.js)
    document_id = await _submit(rig, TEXT, "notes.txt", "text/plain")
    subscription = await _subscription(rig)
    for _ in range(rig.settings.ingest_max_deliver):  # each try dies without an ack
        await subscription.fetch(1, timeout=10)
    assert await _deliver(rig, rig.ingestor(ScriptedEmbedder(), objects)) == IngestOutcome.FAILED
    failed = await DocumentStates(rig.kv).get(document_id)
    assert failed is not None and failed.state is DocumentState.FAILED
    assert failed.reason == "gave up after 2 tries: the last one was interrupted"


async def test_a_document_embedded_by_another_model_fails_with_the_reason(rig: Rig) -> None:
    _, objects = await open_document_buckets(rig.js)
    await _submit(rig, TEXT, "notes.txt", "text/plain")
    assert await _deliver(rig, rig.ingestor(ScriptedEmbedder(), objects)) == IngestOutcome.READY
    # The embed model changed (say int8 -> fp32) while the collection still holds the old vectors.
    later = await _submit(rig, b"Another note about the harbour ferry.", "later.txt", "text/plain")
    other_model = rig.ingestor(ScriptedEmbedder(model="another"), objects)
    assert await _deliver(rig, other_model) == IngestOutcome.FAILED
    failed = await DocumentStates(rig.kv).get(later)
    assert failed is not None and failed.state is DocumentState.FAILED and failed.attempts == 1
    assert "'scripted-8d'" in failed.reason and "'another'" in failed.reason
    assert await rig.store.count(COLLECTION, later) == 0  # nothing of the other model was written
