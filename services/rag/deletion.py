"""Delete a document: its chunks, its uploaded object and its state, in that order.

Chunks go first so that a search right after the reply finds none of them;
the state goes last so that a delete interrupted half-way can be repeated.
An ingest that is still running when the state disappears notices it
before marking the document ready and removes what it wrote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proto.common import ErrorCode
from proto.documents import DeleteDocument, DocumentDeleted
from runtime.errors import ServiceError
from services.rag.documents import DocumentStates, remove_upload
from services.rag.store import PassageStore, validate_collection

if TYPE_CHECKING:
    from nats.js.object_store import ObjectStore

__all__ = ["DocumentNotFound", "delete_document"]


class DocumentNotFound(ServiceError):
    """No document with this id in this collection."""

    code = ErrorCode.NOT_FOUND


async def delete_document(
    request: DeleteDocument,
    *,
    store: PassageStore,
    states: DocumentStates,
    objects: ObjectStore,
    object_timeout_s: float,
) -> DocumentDeleted:
    """Remove the document's chunks, object and state; `DocumentNotFound` if it has none of them."""
    collection = validate_collection(request.collection)
    status = await states.get(request.document_id)
    if status is not None and status.collection != collection:
        # Another collection's document: say nothing about its existence.
        raise DocumentNotFound(f"no document {request.document_id} in collection {collection}")
    removed = await store.delete_document(collection, request.document_id)
    had_object = await remove_upload(objects, request.document_id, timeout_s=object_timeout_s)
    if status is None and not had_object and removed == 0:
        raise DocumentNotFound(f"no document {request.document_id} in collection {collection}")
    await states.delete(request.document_id)
    return DocumentDeleted(document_id=request.document_id, chunks_removed=removed)
