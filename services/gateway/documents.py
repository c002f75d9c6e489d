"""Documents on the bus: store an upload and queue its ingestion, read states, delete, search.

The contract with rag is `proto/documents.py`: the bytes go to the
`DOCUMENTS_OBJECTS` object store under the document id, its `DocumentStatus`
to the `DOCUMENTS_BUCKET` key-value bucket, and an `IngestDocument` to the
durable `INGEST` stream. The same file uploaded twice to one collection is
one document: a second upload returns the first one's state (unless it
failed, then it is queued again).

The state is the gate: an upload queues a document only by creating its
state (or, for a failed one, by replacing exactly the state it read), so of
two uploads of one file at once, one queues it. The message's `Nats-Msg-Id`
names that state's revision (`ingest_message_id`): unique to each upload
that queues the document, so JetStream's duplicate window never swallows a
retry or an upload after a delete.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import msgspec
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from proto.common import MessageDecodeError, decode, encode
from proto.context import RetrieveReply, RetrieveRequest
from proto.documents import (
    OPEN_SCOPE,
    DeleteDocument,
    DocumentDeleted,
    DocumentState,
    DocumentStatus,
    IngestDocument,
    document_id_for,
    ingest_message_id,
)
from proto.streams import INGEST_STREAM_CONFIG
from proto.subjects import DOCUMENT_DELETE, DOCUMENTS_BUCKET, DOCUMENTS_OBJECTS, INGEST, RETRIEVE
from runtime.bus import request as bus_request
from runtime.errors import NotFound, Unavailable
from runtime.jetstream import current_values, ensure_stream, open_key_value, open_object_store
from runtime.logging import get_logger

__all__ = ["DocumentService", "Upload", "read_entry", "submit_upload"]

_log = get_logger(__name__)
# What an ingest message takes from the document's state as it is.
_INGEST_FIELDS = ("document_id", "collection", "file_name", "content_type", "sha256", "size")


class Upload:
    """An uploaded file, its type already checked."""

    __slots__ = ("collection", "content_type", "data", "file_name", "scope")

    def __init__(
        self, *, data: bytes, file_name: str, content_type: str, collection: str, scope: str = OPEN_SCOPE
    ) -> None:
        self.data = data
        self.file_name = file_name
        self.content_type = content_type
        self.collection = collection  # the stored (tenant-scoped) name
        self.scope = scope  # the uploader's tenant, the first token of the document's id


async def submit_upload(
    js: JetStreamContext, states: KeyValue, objects: ObjectStore, upload: Upload, *, timeout_s: float
) -> tuple[DocumentStatus, bool]:
    """Store an upload and queue its ingestion; its state, and whether this call queued it.

    The one submission of a document (the gateway's routes, the tests and the
    benchmarks call it): a file queued, being ingested or ready in its
    collection is not queued again; a failed one is.
    """
    sha256 = await asyncio.to_thread(lambda: hashlib.sha256(upload.data).hexdigest())
    document_id = document_id_for(upload.collection, sha256, upload.scope)
    existing, revision = await read_entry(states, document_id, timeout_s=timeout_s)
    if existing is not None and existing.state is not DocumentState.FAILED:
        return existing, False
    status = _queued(upload, document_id, sha256, attempts=existing.attempts if existing else 0)
    queued: int | None = None  # the revision of the `queued` state this upload wrote
    try:
        async with asyncio.timeout(timeout_s):
            await objects.put(document_id, upload.data)
            record = encode(status)
            if revision is None:  # no state (or a deleted one): create it, or lose to a twin
                queued = await states.create(document_id, record)
            else:  # a failed or unreadable state: replace exactly the one read
                queued = await states.update(document_id, record, last=revision)
            message_id = ingest_message_id(document_id, queued)
            await js.publish(INGEST, encode(_ingest(status)), headers={"Nats-Msg-Id": message_id})
    except KeyWrongLastSequenceError:  # the same file, uploaded at the same moment, queued it
        twin, _ = await read_entry(states, document_id, timeout_s=timeout_s)
        if twin is None:
            raise NotFound(f"no document {document_id}") from None
        return twin, False
    except (NatsError, TimeoutError) as exc:
        if queued is not None:
            await _unqueue(states, status, queued, exc, timeout_s=timeout_s)
        raise Unavailable(f"could not store the upload ({type(exc).__name__})") from exc
    _log.info("document queued", document_id=document_id, size=len(upload.data))
    return status, True


def _queued(upload: Upload, document_id: str, sha256: str, *, attempts: int) -> DocumentStatus:
    now = time.time()
    return DocumentStatus(
        document_id=document_id,
        collection=upload.collection,
        file_name=upload.file_name,
        content_type=upload.content_type,
        size=len(upload.data),
        sha256=sha256,
        state=DocumentState.QUEUED,
        attempts=attempts,
        created_at=now,
        updated_at=now,
    )


def _ingest(status: DocumentStatus) -> IngestDocument:
    """The ingest message of a queued document: its state's fields, and its object's name."""
    described = {name: getattr(status, name) for name in _INGEST_FIELDS}
    return IngestDocument(object_name=status.document_id, **described)


async def _unqueue(
    states: KeyValue, status: DocumentStatus, revision: int, exc: BaseException, *, timeout_s: float
) -> None:
    """Mark `failed` a state whose message was not published, so the next upload retries it.

    Left `queued`, it would stay so forever: no message, and a new upload of a
    queued document is not queued again. Only the state this upload wrote is
    replaced (a publish whose acknowledgement was lost may be ingested already).
    """
    reason = f"the upload could not be queued for ingestion ({type(exc).__name__}); upload it again"
    failed = msgspec.structs.replace(
        status, state=DocumentState.FAILED, reason=reason, updated_at=time.time()
    )
    try:
        async with asyncio.timeout(timeout_s):
            await states.update(status.document_id, encode(failed), last=revision)
    except (NatsError, TimeoutError) as error:
        # The state stays `queued` with no message: the next upload of the file finds it so.
        _log.error(
            "could not mark an unqueued upload failed",
            document_id=status.document_id,
            error=repr(error),
        )


async def read_entry(
    states: KeyValue, document_id: str, *, timeout_s: float
) -> tuple[DocumentStatus | None, int | None]:
    """The document's state (None if none or unreadable) and its revision (None if no entry)."""
    try:
        async with asyncio.timeout(timeout_s):
            entry = await states.get(document_id)
    except KeyNotFoundError:  # also a deleted one
        return None, None
    except (NatsError, TimeoutError) as exc:
        raise Unavailable(f"could not read document state ({type(exc).__name__})") from exc
    return _decoded(entry.value, document_id), entry.revision


class DocumentService:
    """The gateway's side of documents; one per process, its buckets opened on first use."""

    def __init__(self, broker: NatsBroker, *, timeout_s: float) -> None:
        self._broker = broker
        self._timeout_s = timeout_s
        self._opened: tuple[JetStreamContext, KeyValue, ObjectStore] | None = None
        self._opening = asyncio.Lock()

    async def store(self, upload: Upload) -> tuple[DocumentStatus, bool]:
        """Store and queue an upload; returns its state and whether it was queued now."""
        js, states, objects = await self._buckets()
        return await submit_upload(js, states, objects, upload, timeout_s=self._timeout_s)

    async def status(self, document_id: str) -> DocumentStatus:
        """A document's state, or `NotFound`."""
        _, states, _ = await self._buckets()
        status, _ = await read_entry(states, document_id, timeout_s=self._timeout_s)
        if status is None:
            raise NotFound(f"no document {document_id}")
        return status

    async def all(self, scope: str) -> list[DocumentStatus]:
        """The states of one tenant's documents, newest first (and those from before scopes).

        One pass (`current_values`) over the keys of `scope` (`<scope>.*`), none of another tenant's,
        and one over the bare keys of documents uploaded before ids had a scope
        (`*`: one token), which the caller filters by collection as before.
        """
        js, _, _ = await self._buckets()
        found: list[DocumentStatus] = []
        try:
            async with asyncio.timeout(self._timeout_s):
                for keys in (f"{scope}.*", "*"):
                    values = await current_values(js, DOCUMENTS_BUCKET, keys, timeout_s=self._timeout_s)
                    found.extend(s for key, value in values if (s := _decoded(value, key)) is not None)
        except (NatsError, TimeoutError) as exc:
            raise Unavailable(f"could not list documents ({type(exc).__name__})") from exc
        return sorted(found, key=lambda s: s.created_at, reverse=True)

    async def delete(self, status: DocumentStatus) -> DocumentDeleted:
        """Ask rag to remove a document's chunks, object and state."""
        request = DeleteDocument(document_id=status.document_id, collection=status.collection)
        return await bus_request(
            self._broker, DOCUMENT_DELETE, request, DocumentDeleted, service="rag", timeout_s=self._timeout_s
        )

    async def search(self, request: RetrieveRequest, timeout_s: float) -> RetrieveReply:
        """Ranked passages of a collection's documents (and why the ranking is degraded, if it is)."""
        return await bus_request(
            self._broker, RETRIEVE, request, RetrieveReply, service="rag", timeout_s=timeout_s
        )

    async def _buckets(self) -> tuple[JetStreamContext, KeyValue, ObjectStore]:
        if self._opened is None:
            async with self._opening:
                if self._opened is None:
                    self._opened = await self._open()
        return self._opened

    async def _open(self) -> tuple[JetStreamContext, KeyValue, ObjectStore]:
        js = self._broker.connection.jetstream(timeout=self._timeout_s)
        try:
            async with asyncio.timeout(self._timeout_s):
                await ensure_stream(js, INGEST_STREAM_CONFIG)
                states = await open_key_value(
                    js, KeyValueConfig(bucket=DOCUMENTS_BUCKET, storage=StorageType.FILE)
                )
                objects = await open_object_store(js, DOCUMENTS_OBJECTS)
        except (NatsError, TimeoutError) as exc:
            raise Unavailable(f"document storage unavailable ({type(exc).__name__})") from exc
        return js, states, objects


def _decoded(value: bytes | None, document_id: str) -> DocumentStatus | None:
    if not value:
        return None
    try:
        return decode(value, DocumentStatus)
    except MessageDecodeError:
        _log.warning("unreadable document state", document_id=document_id)
        return None
