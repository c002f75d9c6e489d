"""Documents and search: upload, list, status, delete, and `POST /v1/search`.

Collections are per tenant (see `services/gateway/tenancy.py`): clients see
and name only their own; a document of another tenant is simply not found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.params import Body

from proto.context import RetrieveRequest
from proto.documents import DocumentState, DocumentStatus
from services.gateway.documents import DocumentService, Upload
from services.gateway.errors import BadInput, DocumentNotFound, UploadTooLarge
from services.gateway.filetypes import detect_content_type
from services.gateway.protection import tenant_of
from services.gateway.settings import GatewaySettings
from services.gateway.tenancy import COLLECTION_PATTERN, Tenant

__all__ = ["DocumentList", "DocumentView", "SearchBody", "SearchHit", "SearchResults", "document_routes"]

_COLLECTION_RE = re.compile(COLLECTION_PATTERN)
# `<scope>.<hash>` (`proto.documents.document_id_for`), or a bare hash from before scopes
_DOCUMENT_ID_RE = re.compile(r"^((open|k[0-9a-f]{12})\.)?[0-9a-f]{32}$")
_MULTIPART_OVERHEAD_BYTES = 64 * 1024  # form fields and part headers around the file
_MAX_FILE_NAME_CHARS = 255
_SCHEMA_MAX_QUERY_CHARS = 2_000  # documented bound; the setting `max_query_chars` is enforced


class DocumentView(msgspec.Struct, kw_only=True):
    """A document's state as its owner sees it."""

    document_id: str
    collection: str
    file_name: str
    content_type: str
    size: int
    sha256: str
    state: DocumentState
    reason: str = ""
    chunks: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0


class DocumentList(msgspec.Struct, kw_only=True):
    """The caller's documents, newest first."""

    documents: list[DocumentView]


class SearchBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """A search of a collection's documents."""

    query: Annotated[str, msgspec.Meta(min_length=1, max_length=_SCHEMA_MAX_QUERY_CHARS)]
    k: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    collection: Annotated[str, msgspec.Meta(pattern=COLLECTION_PATTERN)] = "default"
    mode: Literal["hybrid", "bm25", "vector"] = "hybrid"


class SearchHit(msgspec.Struct, kw_only=True):
    """One ranked passage."""

    document_id: str
    file_name: str
    score: float
    text: str
    chunk_index: int
    page: int | None = None
    heading_path: list[str] = msgspec.field(default_factory=list)


class SearchResults(msgspec.Struct, kw_only=True):
    """Passages, best first."""

    passages: list[SearchHit]
    # Why the ranking is not the one asked for: a hybrid search answered by BM25 alone while
    # the query could not be embedded. Empty when it is.
    degraded: str = ""


class DocumentDeletion(msgspec.Struct, kw_only=True):
    """What a delete removed."""

    document_id: str
    chunks_removed: int


@dataclass
class UploadForm:
    """The multipart form of an upload."""

    file: UploadFile
    collection: str = field(default="default")


def _view(status: DocumentStatus, tenant: Tenant) -> DocumentView | None:
    collection = tenant.client_name(status.collection)
    if collection is None:
        return None
    return DocumentView(
        document_id=status.document_id,
        collection=collection,
        file_name=status.file_name,
        content_type=status.content_type,
        size=status.size,
        sha256=status.sha256,
        state=status.state,
        reason=status.reason,
        chunks=status.chunks,
        created_at=status.created_at,
        updated_at=status.updated_at,
    )


async def _owned(documents: DocumentService, document_id: str, tenant: Tenant) -> DocumentStatus:
    if not _DOCUMENT_ID_RE.match(document_id):
        raise DocumentNotFound(f"no document {document_id[:64]!r}")
    status = await documents.status(document_id)
    if tenant.client_name(status.collection) is None:
        raise DocumentNotFound(f"no document {document_id}")
    return status


def document_routes(settings: GatewaySettings) -> list[HTTPRouteHandler]:
    """The routes; the upload route's body limit follows `max_upload_bytes`."""

    @post(
        "/documents",
        summary="Upload a document",
        description="PDF, DOCX, HTML, Markdown or plain text; 413 over the size limit, 415 other types.",
        request_max_body_size=settings.max_upload_bytes + _MULTIPART_OVERHEAD_BYTES,
        status_code=202,
    )
    async def upload_document(
        data: Annotated[UploadForm, Body(media_type=RequestEncodingType.MULTI_PART)],
        request: Request[Any, Any, Any],
        documents: DocumentService,
    ) -> Response[DocumentView]:
        """Store the file and queue its ingestion (202); the same file again returns its state (200)."""
        tenant = tenant_of(request)
        if not isinstance(data.collection, str) or not _COLLECTION_RE.match(data.collection):
            raise BadInput(f"collection must match {COLLECTION_PATTERN}")
        if not isinstance(data.file, UploadFile):
            raise BadInput("send the file as the multipart field 'file'")
        content = await data.file.read(settings.max_upload_bytes + 1)
        file_name = (data.file.filename or "upload").replace("/", "_")[:_MAX_FILE_NAME_CHARS]
        if len(content) > settings.max_upload_bytes:
            limit = settings.max_upload_bytes
            raise UploadTooLarge(f"{file_name!r} is over the upload limit of {limit} bytes")
        if not content:
            raise BadInput(f"{file_name!r} is empty")
        content_type = detect_content_type(content, file_name=file_name, declared=data.file.content_type)
        upload = Upload(
            data=content,
            file_name=file_name,
            content_type=content_type,
            collection=tenant.collection(data.collection),
            scope=tenant.scope,
        )
        status, queued = await documents.store(upload)
        view = _view(status, tenant)
        assert view is not None, "an upload is always in the caller's collection"
        return Response(view, status_code=202 if queued else 200)

    @get("/documents", summary="List documents")
    async def list_documents(
        request: Request[Any, Any, Any],
        documents: DocumentService,
        collection: Annotated[str | None, msgspec.Meta(pattern=COLLECTION_PATTERN)] = None,
    ) -> DocumentList:
        """The caller's documents (of one collection if given), newest first."""
        tenant = tenant_of(request)
        states = await documents.all(tenant.scope)
        views = [view for status in states if (view := _view(status, tenant)) is not None]
        if collection is not None:
            views = [view for view in views if view.collection == collection]
        return DocumentList(documents=views)

    @get("/documents/{document_id:str}", summary="A document's state")
    async def get_document(
        document_id: str,
        request: Request[Any, Any, Any],
        documents: DocumentService,
    ) -> DocumentView:
        """queued, ingesting, ready, or failed with the reason."""
        tenant = tenant_of(request)
        view = _view(await _owned(documents, document_id, tenant), tenant)
        assert view is not None
        return view

    @delete("/documents/{document_id:str}", summary="Delete a document", status_code=200)
    async def delete_document(
        document_id: str,
        request: Request[Any, Any, Any],
        documents: DocumentService,
    ) -> DocumentDeletion:
        """Remove the document's chunks, stored file and state."""
        status = await _owned(documents, document_id, tenant_of(request))
        deleted = await documents.delete(status)
        return DocumentDeletion(document_id=deleted.document_id, chunks_removed=deleted.chunks_removed)

    @post("/search", summary="Search documents", status_code=200)
    async def search(
        data: SearchBody, request: Request[Any, Any, Any], documents: DocumentService
    ) -> SearchResults:
        """Ranked passages of the collection's documents, with document id, file name, score and text."""
        if len(data.query) > settings.max_query_chars:
            raise BadInput(f"query has {len(data.query)} characters, the limit is {settings.max_query_chars}")
        retrieve = RetrieveRequest(
            query=data.query,
            collection=tenant_of(request).collection(data.collection),
            k=min(data.k, settings.max_search_k),
            mode=data.mode,
            timeout_ms=int(settings.search_timeout_s * 1000),
        )
        reply = await documents.search(retrieve, settings.search_timeout_s)
        hits = [
            SearchHit(
                document_id=p.document_id,
                file_name=p.file_name,
                score=p.score,
                text=p.text,
                chunk_index=p.chunk_index,
                page=p.page,
                heading_path=p.heading_path,
            )
            for p in reply.passages
        ]
        return SearchResults(passages=hits, degraded=reply.degraded)

    return [upload_document, list_documents, get_document, delete_document, search]
