"""The rag service's bus subscribers: thin, they decode, call, encode.

- `retrieve` (request-reply, queue group): hybrid search.
- `rag.ingest` (JetStream pull consumer `rag-ingest`, shared by every replica,
  pulled by `runtime.workqueue.WorkQueue` once `DocumentService.start` ran,
  explicit acks done by `Ingestor`): durable ingestion.
- `rag.document.delete` (request-reply, queue group): delete a document.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig

from proto.common import ErrorCode, MessageDecodeError, decode
from proto.documents import DeleteDocument, DocumentDeleted, IngestDocument
from proto.streams import INGEST_DEAD_STREAM_CONFIG, INGEST_STREAM_CONFIG
from proto.subjects import DOCUMENT_DELETE, INGEST, INGEST_STREAM, RETRIEVE
from runtime.errors import ServiceError
from runtime.jetstream import ensure_stream
from runtime.logging import get_logger
from runtime.service import answer_requests
from runtime.workqueue import WorkQueue
from services.rag.collection_models import CollectionModels
from services.rag.deletion import delete_document
from services.rag.documents import DocumentStates, open_document_buckets
from services.rag.errors import InvalidCollectionName, StoreError
from services.rag.ingest import Embedder, Ingestor
from services.rag.parse_pool import ParsePool
from services.rag.retrieval import Retriever

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js.object_store import ObjectStore

    from services.rag.settings import RagSettings
    from services.rag.store import PassageStore

__all__ = ["INGEST_DURABLE", "DocumentService", "ingest_consumer_config", "register_handlers"]

INGEST_DURABLE = "rag-ingest"  # the one consumer every rag replica pulls ingest work from
_INGEST_FETCH_WAIT_S = 5.0  # how long one pull of ingest work waits on an empty queue
# Ingests under way at shutdown get as long to finish as the broker gives its handlers
# (`runtime.bus.make_broker`'s graceful timeout); any still running then is cut off.
_INGEST_STOP_GRACE_S = 15.0

_log = get_logger(__name__)


class _NotStarted(ServiceError):
    code = ErrorCode.UNAVAILABLE


def ingest_consumer_config(settings: RagSettings) -> ConsumerConfig:
    """The durable consumer of ingest work: explicit acks, bounded deliveries."""
    return ConsumerConfig(
        durable_name=INGEST_DURABLE,
        name=INGEST_DURABLE,
        filter_subject=INGEST,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ingest_ack_wait_s,
        max_deliver=settings.ingest_max_deliver + 1,  # one more, to fail a try cut off by a crash
        max_ack_pending=max(settings.ingest_concurrency * 4, 16),
    )


class DocumentService:
    """Ingestion and deletion, once connected to JetStream (`start`, at service start-up)."""

    def __init__(
        self, settings: RagSettings, *, store: PassageStore, embedder: Embedder, models: CollectionModels
    ) -> None:
        self._settings = settings
        self._store = store
        self._embedder = embedder
        self._models = models
        self._pool: ParsePool | None = None
        self._ingestor: Ingestor | None = None
        self._states: DocumentStates | None = None
        self._objects: ObjectStore | None = None
        self._ingesting = WorkQueue(
            self.ingest,
            name="rag.ingest",
            max_in_flight=settings.ingest_concurrency,
            fetch_wait_s=_INGEST_FETCH_WAIT_S,
            retry_delay_s=settings.ingest_retry_backoff_s,  # back off while NATS is away
        )

    async def start(self, client: Client) -> None:
        """Declare the streams and the buckets, start the parse workers, then pull ingest work."""
        js = client.jetstream()
        await ensure_stream(js, INGEST_STREAM_CONFIG)
        await ensure_stream(js, INGEST_DEAD_STREAM_CONFIG)
        kv, self._objects = await open_document_buckets(js)
        await self._models.start(js)
        self._states = DocumentStates(kv)
        self._pool = ParsePool(self._settings)
        self._ingestor = Ingestor(
            self._settings,
            store=self._store,
            embedder=self._embedder,
            models=self._models,
            pool=self._pool,
            states=self._states,
            objects=self._objects,
            dead_letters=client,
        )
        # Create the consumer, or update it to the current settings (ack wait, max deliver).
        await self._ingesting.start(js, INGEST_STREAM, ingest_consumer_config(self._settings))

    async def stop_ingesting(self) -> None:
        """Stop pulling ingest work; the ingests under way get a grace to finish (before the broker stops)."""
        await self._ingesting.stop(grace_s=_INGEST_STOP_GRACE_S)

    async def stop(self) -> None:
        """Stop the parse workers."""
        if self._pool is not None:
            self._pool.close()

    async def ingest(self, delivery: Msg) -> None:
        """Handle one delivery; a bus failure before any ack leaves it to be redelivered."""
        try:
            request: IngestDocument = decode(delivery.data, IngestDocument)
        except MessageDecodeError as exc:  # left unacked, as the broker left it: redelivered
            _log.warning("bad request", detail=exc.detail)
            return
        if self._ingestor is None:
            await delivery.nak(delay=self._settings.ingest_retry_backoff_s)
            return
        try:
            await self._ingestor.handle(request, delivery)
        except NatsError as exc:  # the state bucket or the bus failed: JetStream redelivers
            _log.warning("ingest_bus_error", document_id=request.document_id, error=str(exc))
            await delivery.nak(delay=self._settings.ingest_retry_backoff_s)

    async def delete(self, request: DeleteDocument) -> DocumentDeleted:
        """Delete a document's chunks, object and state."""
        if self._states is None or self._objects is None:
            raise _NotStarted("rag is starting")
        try:
            return await delete_document(
                request,
                store=self._store,
                states=self._states,
                objects=self._objects,
                object_timeout_s=self._settings.object_timeout_s,
            )
        except InvalidCollectionName as exc:
            raise ServiceError(exc.detail, code=ErrorCode.BAD_REQUEST) from exc
        except StoreError as exc:
            raise ServiceError(exc.detail, code=ErrorCode.UNAVAILABLE) from exc


def register_handlers(
    broker: NatsBroker, retriever: Retriever, documents: DocumentService, settings: RagSettings
) -> None:
    """Subscribe the rag request subjects (one queue group across replicas; ingest: `DocumentService`)."""

    answer_requests(broker, "rag", RETRIEVE, retriever.retrieve, max_workers=settings.retrieve_concurrency)
    answer_requests(broker, "rag", DOCUMENT_DELETE, documents.delete)
