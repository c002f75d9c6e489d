"""Submit an upload for ingestion: the gateway's side of the contract in `proto/documents.py`.

The bytes go to the object store under the document id, the state `queued`
to the key-value bucket, then an `IngestDocument` to the durable `INGEST`
stream with `Nats-Msg-Id` = document id. The document id is derived from
the collection and the content hash, so the same file twice is one document.
Used by the tests and the benchmark; the gateway may call it too (it
imports only nats-py and `proto`, plus `services.rag.documents`).
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

from nats.js.api import ObjectMeta

from proto.common import encode
from proto.documents import DocumentState, DocumentStatus, IngestDocument, document_id_for
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
    existing = await states.get(document_id)
    if existing is not None and existing.state in _LIVE:
        return existing
    await objects.put(document_id, data, meta=ObjectMeta(name=document_id, description=file_name))
    status = await states.put(
        DocumentStatus(
            document_id=document_id,
            collection=collection,
            file_name=file_name,
            content_type=content_type,
            size=len(data),
            sha256=sha256,
            state=DocumentState.QUEUED,
        )
    )
    request = IngestDocument(
        document_id=document_id,
        collection=collection,
        file_name=file_name,
        content_type=content_type,
        object_name=document_id,
        sha256=sha256,
        size=len(data),
    )
    # A failed document submitted again inside the stream's duplicate window
    # needs a new message id, or JetStream would drop it as a duplicate.
    message_id = document_id if existing is None else f"{document_id}.{time.time_ns()}"
    await js.publish(INGEST, encode(request), stream=INGEST_STREAM, headers={"Nats-Msg-Id": message_id})
    return status
