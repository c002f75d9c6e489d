"""Documents: durable ingestion of uploads, their state, and deletion.

An upload's bytes go to the `DOCUMENTS_OBJECTS` object store under
`object_name`, its `DocumentStatus` (`queued`) to the `DOCUMENTS_BUCKET`
key-value bucket, keyed by `document_id` (created only if absent, so the same
file uploaded twice at once is queued once); then an `IngestDocument` is
published to the durable `INGEST` subject with the `Nats-Msg-Id` of
`ingest_message_id`. rag moves the state along as it ingests, and keeps which
embedding model made each collection's vectors (`CollectionVectors`) in
`COLLECTION_VECTORS_BUCKET`, keyed by the collection.
"""

from __future__ import annotations

import enum
import hashlib

from proto.common import Message

__all__ = [
    "CollectionVectors",
    "DeleteDocument",
    "DocumentDeleted",
    "DocumentState",
    "DocumentStatus",
    "IngestDocument",
    "OPEN_SCOPE",
    "document_id_for",
    "ingest_message_id",
]


class DocumentState(enum.StrEnum):
    """Where a document is in its life."""

    QUEUED = "queued"  # stored and waiting for rag to ingest it
    INGESTING = "ingesting"  # rag is parsing, chunking, embedding and storing it
    READY = "ready"  # its chunks are searchable
    FAILED = "failed"  # it could not be ingested; `reason` says why


OPEN_SCOPE = "open"  # the scope of documents uploaded with API keys off


def document_id_for(collection: str, sha256: str, scope: str = OPEN_SCOPE) -> str:
    """The id of a file's content in a collection: the same file twice is one document.

    It is `<scope>.<hash>`, the scope being the uploader's tenant (`k<key id>`, or
    `open` with API keys off). The id is the document's key in `DOCUMENTS_BUCKET`,
    so one tenant's states are listed by the key filter `<scope>.*`, reading none
    of another tenant's. Ids from before scopes (a bare hash) are still valid.
    """
    digest = hashlib.sha256(f"{collection}\n{sha256}".encode()).hexdigest()[:32]
    return f"{scope}.{digest}"


def ingest_message_id(document_id: str, state_revision: int) -> str:
    """The `Nats-Msg-Id` of an ingest message: the document and the revision of its `queued` state.

    Each upload that queues a document writes a new state revision (the first
    upload, a retry after `failed`, an upload after a delete), so each gets a
    message JetStream keeps; a repeated publish of one upload is dropped.
    """
    return f"{document_id}.{state_revision}"


class IngestDocument(Message, tag="ingest.document"):
    """Ask rag to ingest an uploaded file (a durable JetStream message)."""

    document_id: str
    collection: str
    file_name: str
    content_type: str
    object_name: str
    sha256: str
    size: int


class DocumentStatus(Message, tag="document.status"):
    """A document's state, as kept in the key-value bucket."""

    document_id: str
    collection: str
    file_name: str
    content_type: str
    size: int
    sha256: str
    state: DocumentState
    reason: str = ""
    chunks: int = 0
    attempts: int = 0
    created_at: float = 0.0  # Unix time
    updated_at: float = 0.0


class DeleteDocument(Message, tag="document.delete"):
    """Remove a document: its chunks, its object and its state."""

    document_id: str
    collection: str


class DocumentDeleted(Message, tag="document.deleted"):
    """What a delete removed."""

    document_id: str
    chunks_removed: int


class CollectionVectors(Message, tag="collection.vectors"):
    """The embedding model whose vectors a collection holds (rag's record, one per collection)."""

    collection: str
    model: str  # the display name inference reports, e.g. "all-MiniLM-L6-v2-int8"
    dimensions: int
