"""Submit an upload for ingestion: the gateway's side of the contract in `proto/documents.py`.

The bytes go to the object store under the document id, the state `queued`
to the key-value bucket (created only if absent, so the same file submitted
twice at once is queued once), then an `IngestDocument` to the durable
`INGEST` stream with the `Nats-Msg-Id` of `ingest_message_id`. The document
id is derived from the collection and the content hash, so the same file
twice is one document.
Used by the tests and the benchmark; the gateway may call it too (it
imports only nats-py and `proto`, plus `services.rag.documents`).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from nats.js.api import ObjectMeta
from nats.js.errors import KeyWrongLastSequenceError

from proto.common import encode
from proto.documents import (
    DocumentState,
    DocumentStatus,
    IngestDocument,
    document_id_for,
    ingest_message_id,
)
from proto.subjects import INGEST, INGEST_STREAM
from services.rag.documents import DocumentStates

if TYPE_CHECKING:
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue
    from nats.js.object_store import ObjectStore

__all__ = ["submit_document"]

# A document in one of these states is not submitted again: it is (being) ingested.
_LIVE = frozenset({DocumentState.QUEUED, DocumentState.INGESTING, DocumentState.READY})


async def submit_document(
    js: JetStreamContext,
    kv: KeyValue,
    objects: ObjectStore,
    data: bytes,
    file_name: str,
    content_type: str,
    collection: str,
) -> DocumentStatus:
    """Store an upload and queue it for ingestion; return its status.

    A file already queued, being ingested or ready in this collection is not
    queued again: its current status is returned. A `failed` one is retried.
    """
    sha256 = hashlib.sha256(data).hexdigest()
    document_id = document_id_for(collection, sha256)
    states = DocumentStates(kv)
    existing, revision = await states.entry(document_id)
    if existing is not None and existing.state in _LIVE:
        return existing
    await objects.put(document_id, data, meta=ObjectMeta(name=document_id, description=file_name))
    queued = DocumentStatus(
        document_id=document_id,
        collection=collection,
        file_name=file_name,
        content_type=content_type,
        size=len(data),
        sha256=sha256,
        state=DocumentState.QUEUED,
    )
    try:
        status, queued_revision = await states.replace(queued, revision)
    except KeyWrongLastSequenceError:  # the same file, submitted at the same moment, queued it
        return await states.get(document_id) or queued
    request = IngestDocument(
        document_id=document_id,
        collection=collection,
        file_name=file_name,
        content_type=content_type,
        object_name=document_id,
        sha256=sha256,
        size=len(data),
    )
    message_id = ingest_message_id(document_id, queued_revision)
    await js.publish(INGEST, encode(request), stream=INGEST_STREAM, headers={"Nats-Msg-Id": message_id})
    return status
