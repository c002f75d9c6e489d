"""Which embedding model made each collection's vectors, so that no search mixes two models.

Vectors of two models (or of one model at two precisions, such as the int8
and fp32 `embed`) are not comparable: a query embedded by one, ranked against
chunks embedded by the other, comes back in a near-random order, silently.
So the first ingest into a collection records the model that embedded its
chunks (`CollectionVectors`, in the `COLLECTION_VECTORS_BUCKET` key-value
bucket, which every replica shares), and then:

- an ingest whose embeddings come from another model fails with a reason
  saying so, as long as the collection holds chunks. Once the collection is
  empty (every document deleted), the record moves to the new model;
- a vector or hybrid search whose query embedding comes from another model is
  refused with the reason (BM25 search still works).

Collections ingested before this record existed have none: they are recorded
at their next ingest and are not checked before it.

Searches read the record through a short cache (`cache_s`, the setting
`RAG_COLLECTION_MODEL_CACHE_S`). A record that
changes (only possible once a collection is empty) is seen within that time,
and a mismatch is always read again before it is reported.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from nats.errors import Error as NatsError
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from proto.common import MessageDecodeError, decode, encode
from proto.documents import CollectionVectors
from proto.subjects import COLLECTION_VECTORS_BUCKET
from runtime.jetstream import open_key_value
from runtime.logging import get_logger
from services.rag.errors import RagError, StoreError

if TYPE_CHECKING:
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue

    from services.rag.store import PassageStore

__all__ = ["CollectionModels", "ModelMismatch"]

_CLAIM_TRIES = 3  # a claim loses a race only to another replica's write: read again and retry
_CACHE_MAX = 10_000  # collections remembered at once; the cache starts afresh beyond

_log = get_logger(__name__)


class ModelMismatch(RagError):
    """A collection's vectors were made by another embedding model than the current one."""


class CollectionModels:
    """The record of which model embedded each collection, checked at ingest and at search."""

    def __init__(self, store: PassageStore, *, cache_s: float = 10.0) -> None:
        self._store = store
        self._cache_s = cache_s
        self._kv: KeyValue | None = None
        # collection -> (recorded model or None, when the reading expires)
        self._seen: dict[str, tuple[str | None, float]] = {}

    async def start(self, js: JetStreamContext) -> None:
        """Open the bucket (created by whichever replica starts first)."""
        config = KeyValueConfig(bucket=COLLECTION_VECTORS_BUCKET, storage=StorageType.FILE)
        self._kv = await open_key_value(js, config)

    async def claim(self, collection: str, model: str, dimensions: int) -> None:
        """Record `model` for `collection` before chunks it embedded are written.

        `ModelMismatch` when the collection holds chunks of another model.
        """
        kv = self._bucket()
        record = encode(CollectionVectors(collection=collection, model=model, dimensions=dimensions))
        for _ in range(_CLAIM_TRIES):
            recorded, revision = await self._read(collection)
            try:
                if revision is None:
                    await kv.create(collection, record)
                elif recorded == model:
                    return
                elif recorded is not None and await self._store.count(collection) > 0:
                    raise ModelMismatch(_mismatch(collection, recorded, model))
                else:  # empty (or an unreadable record): the collection starts again with this model
                    await kv.update(collection, record, last=revision)
            except KeyWrongLastSequenceError:
                continue  # another replica wrote the record between our read and write
            self._remember(collection, model)
            return
        raise StoreError(f"the model record of collection {collection!r} kept changing; try again")

    async def check(self, collection: str, model: str) -> None:
        """`ModelMismatch` if `collection` holds chunks embedded by another model than `model`."""
        recorded, expires = self._seen.get(collection, (None, 0.0))
        if expires < time.monotonic() or recorded not in (None, model):
            recorded, _ = await self._read(collection)
        if recorded in (None, model) or await self._store.count(collection) == 0:
            return
        raise ModelMismatch(_mismatch(collection, recorded, model))

    async def _read(self, collection: str) -> tuple[str | None, int | None]:
        """The recorded model (None if none, or unreadable) and the entry's revision (None if absent)."""
        try:
            entry = await self._bucket().get(collection)
        except KeyNotFoundError:  # also KeyDeletedError, its subclass
            recorded, revision = None, None
        except (NatsError, TimeoutError) as exc:  # JetStream unreachable: a retry may succeed
            raise StoreError(f"the model record of collection {collection!r} is unreadable: {exc!r}") from exc
        else:
            recorded, revision = _model(collection, entry.value), entry.revision
        self._remember(collection, recorded)
        return recorded, revision

    def _remember(self, collection: str, recorded: str | None) -> None:
        if len(self._seen) >= _CACHE_MAX:
            self._seen.clear()
        self._seen[collection] = (recorded, time.monotonic() + self._cache_s)

    def _bucket(self) -> KeyValue:
        if self._kv is None:
            raise StoreError("rag is starting: the collection model records are not open yet")
        return self._kv


def _model(collection: str, value: bytes | None) -> str | None:
    try:
        return decode(value or b"", CollectionVectors).model
    except MessageDecodeError as exc:  # an empty or foreign value: as if there were no record
        _log.warning("collection_model_record_unreadable", collection=collection, error=exc.detail)
        return None


def _mismatch(collection: str, recorded: str | None, model: str) -> str:
    return (
        f"collection {collection!r} holds vectors made by the embedding model {recorded!r}, "
        f"and embeddings now come from {model!r}: vectors of two models cannot be compared. "
        "Delete its documents and upload them again, or search it with mode 'bm25'"
    )
