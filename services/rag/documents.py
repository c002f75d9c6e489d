"""Document state in the JetStream key-value bucket, and the buckets uploads live in.

`DocumentStatus` (proto/documents.py) is kept under its `document_id` in
`DOCUMENTS_BUCKET`; the raw upload is the object `document_id` of
`DOCUMENTS_OBJECTS`. Both buckets are declared idempotently by whoever
starts first (rag or the gateway), with the same configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import msgspec
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType
from nats.js.errors import KeyNotFoundError, ObjectNotFoundError

from proto.common import MessageDecodeError, decode, encode
from proto.documents import DocumentState, DocumentStatus
from proto.subjects import DOCUMENTS_BUCKET, DOCUMENTS_OBJECTS
from runtime.jetstream import open_key_value, open_object_store
from runtime.logging import get_logger

if TYPE_CHECKING:
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue
    from nats.js.object_store import ObjectStore

__all__ = [
    "SETTLED",
    "DocumentStates",
    "UploadMissing",
    "open_document_buckets",
    "read_upload",
    "remove_upload",
    "wait_for_state",
]

SETTLED = frozenset({DocumentState.READY, DocumentState.FAILED})  # states an ingest ends in

_log = get_logger(__name__)


class UploadMissing(Exception):
    """The uploaded file is not (or no longer) in the object store."""


async def open_document_buckets(js: JetStreamContext) -> tuple[KeyValue, ObjectStore]:
    """The state bucket and the object store of uploads, created if missing (file storage)."""
    kv = await open_key_value(js, KeyValueConfig(bucket=DOCUMENTS_BUCKET, storage=StorageType.FILE))
    objects = await open_object_store(
        js, DOCUMENTS_OBJECTS, ObjectStoreConfig(bucket=DOCUMENTS_OBJECTS, storage=StorageType.FILE)
    )
    return kv, objects


async def read_upload(objects: ObjectStore, document_id: str, *, timeout_s: float) -> bytes:
    """The uploaded bytes of a document; `UploadMissing` if there are none."""
    try:
        result = await asyncio.wait_for(objects.get(document_id), timeout_s)
    except ObjectNotFoundError as exc:
        raise UploadMissing(f"the upload of document {document_id} is not in the object store") from exc
    return bytes(result.data or b"")


async def remove_upload(objects: ObjectStore, document_id: str, *, timeout_s: float) -> bool:
    """Delete a document's upload; False if there was none."""
    try:
        await asyncio.wait_for(objects.delete(document_id), timeout_s)
    except ObjectNotFoundError:
        return False
    return True


class DocumentStates:
    """Read and write `DocumentStatus` records in the key-value bucket."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def get(self, document_id: str) -> DocumentStatus | None:
        """The document's status, or None if it has none (never uploaded, or deleted)."""
        return (await self.entry(document_id))[0]

    async def entry(self, document_id: str) -> tuple[DocumentStatus | None, int | None]:
        """The document's status (None if none, or unreadable) and its revision (None if no entry)."""
        try:
            entry = await self._kv.get(document_id)
        except KeyNotFoundError:  # also KeyDeletedError, its subclass
            return None, None
        try:
            return decode(entry.value or b"", DocumentStatus), entry.revision
        except MessageDecodeError as exc:  # written by another version, or damaged: as if absent
            _log.warning("document_state_unreadable", document_id=document_id, error=exc.detail)
            return None, entry.revision

    async def put(self, status: DocumentStatus) -> DocumentStatus:
        """Store `status`, stamping `updated_at` (and `created_at` when unset)."""
        stamped = _stamped(status)
        await self._kv.put(status.document_id, encode(stamped))
        return stamped

    async def replace(self, status: DocumentStatus, revision: int | None) -> tuple[DocumentStatus, int]:
        """Store `status` only over the entry of `revision` (None: only if there is none); new revision.

        `KeyWrongLastSequenceError` if the entry changed since it was read.
        """
        stamped = _stamped(status)
        if revision is None:
            return stamped, await self._kv.create(status.document_id, encode(stamped))
        return stamped, await self._kv.update(status.document_id, encode(stamped), last=revision)

    async def transition(
        self, status: DocumentStatus, state: DocumentState, **changes: object
    ) -> DocumentStatus:
        """Store `status` moved to `state`, with other fields changed (`reason`, `chunks`, `attempts`)."""
        return await self.put(msgspec.structs.replace(status, state=state, **changes))

    async def delete(self, document_id: str) -> None:
        """Forget the document's state (a missing key is not an error)."""
        with contextlib.suppress(KeyNotFoundError):
            await self._kv.purge(document_id)


def _stamped(status: DocumentStatus) -> DocumentStatus:
    now = time.time()
    return msgspec.structs.replace(status, updated_at=now, created_at=status.created_at or now)


async def wait_for_state(
    kv: KeyValue,
    document_id: str,
    *,
    timeout_s: float,
    states: frozenset[DocumentState] = SETTLED,
) -> DocumentStatus:
    """Watch the document's key until its state is one of `states`; TimeoutError after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    watcher = await kv.watch(document_id)
    last: DocumentStatus | None = None
    try:
        while (remaining := deadline - loop.time()) > 0:
            try:
                entry = await watcher.updates(timeout=remaining)  # type: ignore[no-untyped-call]
            except NatsTimeoutError:
                break
            if entry is None or not entry.value:
                continue  # the end of the initial values, or a delete marker
            last = decode(entry.value, DocumentStatus)
            if last.state in states:
                return last
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    seen = last.state if last is not None else "no state"
    raise TimeoutError(f"document {document_id} not {sorted(states)} after {timeout_s} s (last: {seen})")
