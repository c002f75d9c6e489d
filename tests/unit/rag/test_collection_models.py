"""`CollectionModels` on a real nats-server (its key-value bucket) and a real LanceDB folder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext
from structlog.testing import capture_logs

from deploy.cluster import NatsServer
from proto.common import decode
from proto.documents import CollectionVectors
from proto.subjects import COLLECTION_VECTORS_BUCKET
from services.rag.collection_models import CollectionModels, ModelMismatch
from services.rag.errors import StoreError
from services.rag.store import StoredChunk
from services.rag.store.lance import LanceStore

COLLECTION = "team-a"


@dataclass
class Rig:
    js: JetStreamContext
    store: LanceStore
    server: NatsServer

    async def replica(self) -> CollectionModels:
        """Another rag replica's view of the records (its own cache)."""
        models = CollectionModels(self.store)
        await models.start(self.js)
        return models

    async def record(self) -> CollectionVectors:
        kv = await self.js.key_value(COLLECTION_VECTORS_BUCKET)
        entry = await kv.get(COLLECTION)
        return decode(entry.value or b"", CollectionVectors)

    async def write_chunk(self, document_id: str = "d1") -> None:
        chunk = StoredChunk(
            chunk_id=f"{document_id}-0",
            document_id=document_id,
            collection=COLLECTION,
            file_name="notes.txt",
            index=0,
            text="The ferry leaves at seven.",
            page=None,
            heading_path=(),
            char_start=0,
            char_end=26,
            vector=[1.0, 0.0, 0.0, 0.0],
        )
        await self.store.upsert([chunk])


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    client = await nats.connect(server.url)
    store = LanceStore(str(tmp_path / "lance"))
    try:
        yield Rig(client.jetstream(timeout=1.0), store, server)
    finally:
        await store.close()
        await client.close()
        server.stop()


async def test_the_first_claim_records_the_model_and_later_ones_of_it_pass(rig: Rig) -> None:
    models = await rig.replica()
    await models.claim(COLLECTION, "model-a", 4)
    assert await rig.record() == CollectionVectors(collection=COLLECTION, model="model-a", dimensions=4)
    await rig.write_chunk()
    await models.claim(COLLECTION, "model-a", 4)
    await models.check(COLLECTION, "model-a")


async def test_another_model_is_refused_while_chunks_remain_and_takes_over_once_empty(rig: Rig) -> None:
    models = await rig.replica()
    await models.claim(COLLECTION, "model-a", 4)
    await rig.write_chunk()
    with pytest.raises(ModelMismatch, match=r"'model-a'.*'model-b'.*mode 'bm25'"):
        await models.claim(COLLECTION, "model-b", 4)
    with pytest.raises(ModelMismatch, match=r"'model-a'.*'model-b'"):
        await models.check(COLLECTION, "model-b")
    await rig.store.delete_document(COLLECTION, "d1")
    await models.check(COLLECTION, "model-b")  # nothing stored is left to mismatch
    await models.claim(COLLECTION, "model-b", 8)
    assert (await rig.record()).model == "model-b"
    await rig.write_chunk()
    with pytest.raises(ModelMismatch):
        await models.check(COLLECTION, "model-a")


async def test_a_collection_without_a_record_is_not_checked(rig: Rig) -> None:
    models = await rig.replica()
    await rig.write_chunk()  # ingested before records existed
    await models.check(COLLECTION, "any-model")


async def test_an_unreadable_record_is_logged_and_taken_as_none(rig: Rig) -> None:
    models = await rig.replica()
    kv = await rig.js.key_value(COLLECTION_VECTORS_BUCKET)
    await kv.put(COLLECTION, b"written by something else")
    await rig.write_chunk()
    with capture_logs() as logs:
        await models.check(COLLECTION, "any-model")
    assert [(log["event"], log["collection"]) for log in logs] == [
        ("collection_model_record_unreadable", COLLECTION)
    ]
    await models.claim(COLLECTION, "model-a", 4)  # the next ingest records its model over it
    assert (await rig.record()).model == "model-a"


async def test_replicas_claiming_at_once_agree_on_one_record(rig: Rig) -> None:
    replicas = [await rig.replica() for _ in range(4)]
    await asyncio.gather(*(models.claim(COLLECTION, "model-a", 4) for models in replicas))
    kv = await rig.js.key_value(COLLECTION_VECTORS_BUCKET)
    entry = await kv.get(COLLECTION)
    assert entry.revision == 1  # one create won; the others read it and passed
    assert (await rig.record()).model == "model-a"


async def test_a_replica_sees_a_record_another_replica_moved(rig: Rig) -> None:
    first, second = await rig.replica(), await rig.replica()
    await first.claim(COLLECTION, "model-a", 4)
    await rig.write_chunk()
    await first.check(COLLECTION, "model-a")  # cached: model-a
    await rig.store.delete_document(COLLECTION, "d1")
    await second.claim(COLLECTION, "model-b", 4)
    await rig.write_chunk()
    await first.check(COLLECTION, "model-b")  # a mismatch with the cache is read again
    with pytest.raises(ModelMismatch):
        await first.check(COLLECTION, "model-a")


async def test_before_start_the_record_is_unavailable(rig: Rig) -> None:
    with pytest.raises(StoreError, match="starting"):
        await CollectionModels(rig.store).check(COLLECTION, "model-a")


async def test_jetstream_gone_is_a_store_error_that_can_be_retried(rig: Rig) -> None:
    models = await rig.replica()
    rig.server.stop()
    with pytest.raises(StoreError, match="unreadable"):
        await models.check(COLLECTION, "model-a")
