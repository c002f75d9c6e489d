"""`POST /v1/search`: ranked passages of a collection's documents."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Router, post

from proto.context import RetrieveRequest
from runtime.errors import BadRequest
from services.gateway.documents import DocumentService
from services.gateway.protection import tenant_of
from services.gateway.settings import GatewaySettings
from services.gateway.tenancy import COLLECTION_PATTERN

__all__ = ["SearchBody", "SearchHit", "SearchResults", "router"]

_SCHEMA_MAX_QUERY_CHARS = 2_000  # documented bound; the setting `max_query_chars` is enforced


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


def router(settings: GatewaySettings) -> Router:
    """The `/search` route."""
    return Router("/search", route_handlers=[search], request_max_body_size=settings.max_body_bytes)


@post("/", summary="Search documents", status_code=200)
async def search(
    data: SearchBody,
    request: Request[Any, Any, Any],
    documents: DocumentService,
    settings: GatewaySettings,
) -> SearchResults:
    """Ranked passages of the collection's documents, with document id, file name, score and text."""
    if len(data.query) > settings.max_query_chars:
        raise BadRequest(f"query has {len(data.query)} characters, the limit is {settings.max_query_chars}")
    retrieve = RetrieveRequest(
        query=data.query,
        collection=tenant_of(request).collection(data.collection),
        k=min(data.k, settings.max_search_k),
        mode=data.mode,
        timeout_ms=int(settings.search_timeout_s * 1000),
    )
    reply = await documents.search(retrieve, settings.search_timeout_s)
    hits = [msgspec.convert(passage, SearchHit, from_attributes=True) for passage in reply.passages]
    return SearchResults(passages=hits, degraded=reply.degraded)
