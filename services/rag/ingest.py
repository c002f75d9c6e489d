"""Durable ingestion: one `IngestDocument` message in, a `ready` (or `failed`) document out.

The consumer (a JetStream pull consumer shared by every replica, see
`handlers.py`) hands each delivery to `Ingestor.handle`, which reads the
upload from the object store, parses and chunks it in a process pool,
embeds the chunks over the bus, writes them to the passage store and
records the state; the message is acked only once the chunks are stored
and the state says `ready`.

Idempotent: chunk ids are `chunk_id_for(document_id, index)` and writes are
upserts, so a redelivered message overwrites instead of duplicating, and a
document already `ready` is acked at once. Failures are of two kinds: the
uploader's (unparseable, unsupported, missing upload, a collection that holds
another embedding model's vectors) fail the document at once; ours
(inference down, store error, a parse worker that died) are retried with
exponential backoff (`nak(delay)`) until the last delivery.
Either way a failed document ends `failed` with its reason and its message
is published on the dead-letter subject before the original is acked.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

import msgspec
from nats.errors import Error as NatsError

from proto.common import encode
from proto.documents import DocumentState, DocumentStatus, IngestDocument
from proto.subjects import INGEST_DEAD_LETTER
from runtime.logging import get_logger
from services.rag.chunking import Chunk
from services.rag.collection_models import CollectionModels
from services.rag.documents import DocumentStates, UploadMissing, read_upload
from services.rag.embeddings import Embeddings, EmbeddingUnavailable
from services.rag.errors import RagError, StoreError
from services.rag.parse_pool import ParsePool, ParseTimeout, ParseWorkerDied
from services.rag.store import PassageStore, StoredChunk

if TYPE_CHECKING:
    from collections.abc import Sequence

    from nats.aio.msg import Msg
    from nats.js.object_store import ObjectStore

    from services.rag.settings import RagSettings

__all__ = [
    "FAILURE_REASON_HEADER",
    "DeadLetterPublisher",
    "Embedder",
    "IngestOutcome",
    "Ingestor",
]

FAILURE_REASON_HEADER = "Rag-Failure-Reason"  # on dead-lettered IngestDocument messages

_log = get_logger(__name__)


class Embedder(Protocol):
    """What ingestion needs from the embedder (`BusEmbedder`)."""

    async def embed(self, texts: Sequence[str], *, timeout_s: float | None = None) -> Embeddings:
        """One unit vector per text, in order, and the model that made them."""
        ...


class DeadLetterPublisher(Protocol):
    """A core NATS publisher (`nats.aio.client.Client`)."""

    async def publish(
        self, subject: str, payload: bytes = b"", reply: str = "", headers: dict[str, str] | None = None
    ) -> None:
        """Publish one message."""
        ...


class IngestOutcome:
    """What `Ingestor.handle` did with a delivery (for logs and tests)."""

    READY = "ready"  # chunks stored, state ready, acked
    ALREADY_READY = "already_ready"  # a redelivery or repeat of a ready document, acked
    GONE = "gone"  # the document was deleted before it was ingested, acked
    RETRY = "retry"  # a transient error, nak'ed with a delay
    FAILED = "failed"  # state failed, dead-lettered, acked


class _PermanentFailure(Exception):
    """The document can never be ingested as it is: fail it without retrying."""


class Ingestor:
    """Turns one ingest delivery into a `ready` or `failed` document, exactly once."""

    def __init__(
        self,
        settings: RagSettings,
        *,
        store: PassageStore,
        embedder: Embedder,
        models: CollectionModels,
        pool: ParsePool,
        states: DocumentStates,
        objects: ObjectStore,
        dead_letters: DeadLetterPublisher,
    ) -> None:
        self._settings = settings
        self._store = store
        self._embedder = embedder
        self._models = models
        self._pool = pool
        self._states = states
        self._objects = objects
        self._dead_letters = dead_letters

    async def handle(self, request: IngestDocument, delivery: Msg) -> str:
        """Ingest the document of one delivery and ack, nak or dead-letter it; return the outcome."""
        attempt = delivery.metadata.num_delivered or 1
        status = await self._states.get(request.document_id)
        if status is None or status.sha256 != request.sha256:
            _log.info("ingest_skipped_deleted", document_id=request.document_id)
            await delivery.ack()
            return IngestOutcome.GONE
        if status.state is DocumentState.READY:
            await delivery.ack()
            return IngestOutcome.ALREADY_READY
        if attempt > self._settings.ingest_max_deliver:
            # The consumer allows one delivery more than the tries, so that a document whose
            # last try died with its replica still ends failed instead of stuck `ingesting`.
            reason = f"gave up after {attempt - 1} tries: the last one was interrupted"
            return await self._fail(status, request, delivery, reason)
        status = await self._states.transition(status, DocumentState.INGESTING, attempts=attempt, reason="")
        return await self._attempt(status, request, delivery, attempt)

    async def _attempt(
        self, status: DocumentStatus, request: IngestDocument, delivery: Msg, attempt: int
    ) -> str:
        """One try at the document, sending in-progress acks while it runs."""
        keep_alive = asyncio.create_task(self._keep_alive(delivery))
        try:
            chunks = await self._ingest(request)
        except (ParseWorkerDied, EmbeddingUnavailable, StoreError, NatsError, TimeoutError) as exc:
            return await self._retry_or_fail(status, request, delivery, attempt, _reason(exc))
        except (_PermanentFailure, ParseTimeout, RagError, UploadMissing) as exc:  # StoreError: above
            return await self._fail(status, request, delivery, _reason(exc))
        except Exception as exc:  # a bug: retried like a transient error, so it ends failed, not stuck
            _log.error("ingest_crashed", document_id=request.document_id, exc_info=exc)
            return await self._retry_or_fail(status, request, delivery, attempt, f"internal error: {exc!r}")
        finally:
            keep_alive.cancel()
        if await self._states.get(request.document_id) is None:  # deleted while we worked
            await self._store.delete_document(request.collection, request.document_id)
            await delivery.ack()
            return IngestOutcome.GONE
        await self._states.transition(status, DocumentState.READY, chunks=chunks)
        await delivery.ack()
        _log.info("document_ready", document_id=request.document_id, chunks=chunks, attempt=attempt)
        return IngestOutcome.READY

    async def _ingest(self, request: IngestDocument) -> int:
        """Read, parse, chunk, embed and store the document; return its chunk count."""
        timeout_s = self._settings.object_timeout_s
        data = await read_upload(self._objects, request.object_name, timeout_s=timeout_s)
        try:
            chunks = await self._pool.chunks(data, request)
        except (ParseTimeout, ParseWorkerDied, RagError):
            raise
        except Exception as exc:  # a parser bug on this input: it would fail again on every try
            _log.error("parser_crashed", document_id=request.document_id, exc_info=exc)
            raise _PermanentFailure(f"the document could not be parsed ({type(exc).__name__})") from exc
        embedded = await self._embedder.embed([chunk.text for chunk in chunks])
        if embedded.vectors:  # a collection holds the vectors of one model only
            await self._models.claim(request.collection, embedded.model, len(embedded.vectors[0]))
        pairs = zip(chunks, embedded.vectors, strict=True)
        stored = [_stored(chunk, request.collection, vector) for chunk, vector in pairs]
        await self._store_exactly(request, stored)
        return len(stored)

    async def _store_exactly(self, request: IngestDocument, chunks: list[StoredChunk]) -> None:
        """Upsert the chunks so the store holds exactly these for the document.

        An earlier, interrupted attempt with other chunking settings may have left
        chunks past the new count: then the document's chunks are rewritten.
        """
        await self._store.upsert(chunks)
        if await self._store.count(request.collection, request.document_id) == len(chunks):
            return
        await self._store.delete_document(request.collection, request.document_id)
        await self._store.upsert(chunks)
        held = await self._store.count(request.collection, request.document_id)
        if held != len(chunks):
            raise StoreError(f"the store holds {held} chunks of the document after writing {len(chunks)}")

    async def _retry_or_fail(
        self, status: DocumentStatus, request: IngestDocument, delivery: Msg, attempt: int, reason: str
    ) -> str:
        settings = self._settings
        if attempt >= settings.ingest_max_deliver:
            return await self._fail(status, request, delivery, f"gave up after {attempt} tries: {reason}")
        delay = min(settings.ingest_retry_backoff_s * 2 ** (attempt - 1), settings.ingest_retry_backoff_max_s)
        _log.warning(
            "ingest_retry", document_id=request.document_id, attempt=attempt, delay_s=delay, reason=reason
        )
        await self._states.transition(status, DocumentState.QUEUED, reason=f"retrying: {reason}")
        await delivery.nak(delay=delay)
        return IngestOutcome.RETRY

    async def _fail(self, status: DocumentStatus, request: IngestDocument, delivery: Msg, reason: str) -> str:
        _log.warning("document_failed", document_id=request.document_id, reason=reason)
        await self._states.transition(status, DocumentState.FAILED, reason=reason, chunks=0)
        await self._dead_letters.publish(
            INGEST_DEAD_LETTER, encode(request), headers={FAILURE_REASON_HEADER: reason[:1000]}
        )
        await delivery.ack()  # a work-queue stream drops it; the dead-letter subject keeps the record
        return IngestOutcome.FAILED

    async def _keep_alive(self, delivery: Msg) -> None:
        """Tell JetStream the message is being worked on, so it is not redelivered meanwhile."""
        interval = max(self._settings.ingest_ack_wait_s / 3, 0.1)
        while True:
            await asyncio.sleep(interval)  # a heartbeat period, not a synchronisation
            try:
                await delivery.in_progress()
            except NatsError as exc:
                _log.warning("ingest_progress_failed", error=str(exc))


def _reason(exc: BaseException) -> str:
    detail = getattr(exc, "detail", None)
    return str(detail or exc or type(exc).__name__)


def _stored(chunk: Chunk, collection: str, vector: list[float]) -> StoredChunk:
    """The chunk as the store keeps it: in its collection, with its vector, without its token count."""
    fields = msgspec.structs.asdict(chunk)
    del fields["token_count"]
    return StoredChunk(**fields, collection=collection, vector=vector)
