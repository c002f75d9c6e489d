"""Documents: upload, list, state and delete, under `/v1/documents`.

Collections are per tenant (see `services/gateway/tenancy.py`): clients see
and name only their own; a document of another tenant is simply not found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body

from proto.documents import DocumentState, DocumentStatus
from runtime.errors import BadRequest, NotFound, TooLarge
from services.gateway.documents import DocumentService, Upload
from services.gateway.filetypes import detect_content_type
from services.gateway.protection import tenant_of
from services.gateway.settings import GatewaySettings
from services.gateway.tenancy import COLLECTION_PATTERN, Tenant

__all__ = ["DocumentList", "DocumentView", "router"]

_COLLECTION_RE = re.compile(COLLECTION_PATTERN)
# `<scope>.<hash>` (`proto.documents.document_id_for`), or a bare hash from before scopes
_DOCUMENT_ID_RE = re.compile(r"^((open|k[0-9a-f]{12})\.)?[0-9a-f]{32}$")
_MULTIPART_OVERHEAD_BYTES = 64 * 1024  # form fields and part headers around the file
_MAX_FILE_NAME_CHARS = 255


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


class DocumentDeletion(msgspec.Struct, kw_only=True):
    """What a delete removed."""

    document_id: str
    chunks_removed: int


@dataclass
class UploadForm:
    """The multipart form of an upload."""

    file: UploadFile
    collection: str = field(default="default")


def router(settings: GatewaySettings) -> Router:
    """The `/documents` routes; an upload's body may be as large as `max_upload_bytes` allows."""
    return Router(
        "/documents",
        route_handlers=[upload_document, list_documents, get_document, delete_document],
        request_max_body_size=settings.max_upload_bytes + _MULTIPART_OVERHEAD_BYTES,
    )


def _view(status: DocumentStatus, tenant: Tenant) -> DocumentView | None:
    """The state as its owner sees it (None for a document of another tenant)."""
    collection = tenant.client_name(status.collection)
    if collection is None:
        return None
    view = msgspec.convert(status, DocumentView, from_attributes=True)
    return msgspec.structs.replace(view, collection=collection)


async def _owned(documents: DocumentService, document_id: str, tenant: Tenant) -> DocumentStatus:
    if not _DOCUMENT_ID_RE.match(document_id):
        raise NotFound(f"no document {document_id[:64]!r}")
    status = await documents.status(document_id)
    if tenant.client_name(status.collection) is None:
        raise NotFound(f"no document {document_id}")
    return status


@post(
    "/",
    summary="Upload a document",
    description="PDF, DOCX, HTML, Markdown or plain text; 413 over the size limit, 415 other types.",
    status_code=202,
)
async def upload_document(
    data: Annotated[UploadForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    request: Request[Any, Any, Any],
    documents: DocumentService,
    settings: GatewaySettings,
) -> Response[DocumentView]:
    """Store the file and queue its ingestion (202); the same file again returns its state (200)."""
    tenant = tenant_of(request)
    content, file_name = await _read_upload(data, settings.max_upload_bytes)
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


async def _read_upload(data: UploadForm, max_bytes: int) -> tuple[bytes, str]:
    """The uploaded bytes and a safe file name; `BadRequest` or `TooLarge` if unusable."""
    if not isinstance(data.collection, str) or not _COLLECTION_RE.match(data.collection):
        raise BadRequest(f"collection must match {COLLECTION_PATTERN}")
    if not isinstance(data.file, UploadFile):
        raise BadRequest("send the file as the multipart field 'file'")
    content = await data.file.read(max_bytes + 1)
    file_name = (data.file.filename or "upload").replace("/", "_")[:_MAX_FILE_NAME_CHARS]
    if len(content) > max_bytes:
        raise TooLarge(f"{file_name!r} is over the upload limit of {max_bytes} bytes")
    if not content:
        raise BadRequest(f"{file_name!r} is empty")
    return content, file_name


@get("/", summary="List documents")
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


@get("/{document_id:str}", summary="A document's state")
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


@delete("/{document_id:str}", summary="Delete a document", status_code=200)
async def delete_document(
    document_id: str,
    request: Request[Any, Any, Any],
    documents: DocumentService,
) -> DocumentDeletion:
    """Remove the document's chunks, stored file and state."""
    status = await _owned(documents, document_id, tenant_of(request))
    deleted = await documents.delete(status)
    return DocumentDeletion(document_id=deleted.document_id, chunks_removed=deleted.chunks_removed)
