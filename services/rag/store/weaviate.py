"""The server passage store: Weaviate, through the v4 async client (gRPC + REST).

All chunks live in one Weaviate collection (`settings.weaviate_collection`)
with multi-tenancy: each rag collection is a tenant. Tenants are Weaviate's
unit of isolation (separate shards: no query crosses them, BM25 statistics
are per tenant, deleting a tenant deletes its data), and they scale to very
many small collections better than one Weaviate collection each. Tenants
are created on first write (`auto_tenant_creation`).

Vectors are ours (self-provided, cosine HNSW). Object UUIDs are derived
from `chunk_id`, so re-inserting a chunk replaces it. Hybrid search uses
Weaviate's ranked fusion (RRF, like the embedded store) weighted by
`weaviate_alpha`. Filters are built with `Filter`, never from strings.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec
import weaviate
from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances
from weaviate.classes.data import DataObject
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import Filter, HybridFusion, MetadataQuery
from weaviate.exceptions import WeaviateBaseError
from weaviate.util import generate_uuid5

from services.rag.errors import StoreError
from services.rag.store.base import Passage, SearchMode, StoredChunk, validate_collection

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from weaviate.client import WeaviateAsyncClient
    from weaviate.collections.classes.filters import _Filters
    from weaviate.collections.classes.internal import QueryReturn
    from weaviate.collections.collection.async_ import CollectionAsync
    from weaviate.collections.query import _QueryCollectionAsync

    from services.rag.settings import RagSettings

__all__ = ["WeaviateStore"]

_RETURNED = ["chunk_id", "document_id", "file_name", "index", "text", "page", "heading_path"]
_RETURNED += ["char_start", "char_end"]


def _properties() -> list[Property]:
    def keyword(name: str) -> Property:  # exact-match, filterable, not part of BM25
        return Property(
            name=name, data_type=DataType.TEXT, tokenization=Tokenization.FIELD, index_searchable=False
        )

    def number(name: str) -> Property:
        return Property(name=name, data_type=DataType.INT)

    return [
        keyword("chunk_id"),
        keyword("document_id"),
        keyword("file_name"),
        Property(name="text", data_type=DataType.TEXT, tokenization=Tokenization.WORD),
        Property(name="heading_path", data_type=DataType.TEXT_ARRAY, index_searchable=False),
        number("index"),
        number("page"),
        number("char_start"),
        number("char_end"),
    ]


@dataclass(frozen=True)
class _Scope:
    """What one search looks in: a tenant's query handle, how many hits, which documents."""

    tenant: str
    query: _QueryCollectionAsync[Any, Any]
    k: int
    where: _Filters | None


class WeaviateStore:
    """`PassageStore` on a Weaviate server; connects on first use."""

    def __init__(self, client: WeaviateAsyncClient, *, collection_name: str, alpha: float) -> None:
        self._client = client
        self._name = collection_name
        self._alpha = alpha
        self._ready: CollectionAsync[Any, Any] | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: RagSettings) -> WeaviateStore:
        """A store for `settings.weaviate_url` (gRPC on `weaviate_grpc_port` of the same host)."""
        url = urlsplit(settings.weaviate_url)
        secure = url.scheme == "https"
        host = url.hostname or "localhost"
        timeout = settings.weaviate_timeout_s
        client = weaviate.use_async_with_custom(
            http_host=host,
            http_port=url.port or (443 if secure else 80),
            http_secure=secure,
            grpc_host=host,
            grpc_port=settings.weaviate_grpc_port,
            grpc_secure=secure,
            auth_credentials=Auth.api_key(settings.weaviate_api_key) if settings.weaviate_api_key else None,
            additional_config=AdditionalConfig(timeout=Timeout(init=timeout, query=timeout, insert=timeout)),
        )
        return cls(client, collection_name=settings.weaviate_collection, alpha=settings.weaviate_alpha)

    async def upsert(self, chunks: Sequence[StoredChunk]) -> None:
        """Insert or replace chunks (UUID derived from `chunk_id`), one batch per tenant."""
        by_tenant: dict[str, dict[str, StoredChunk]] = {}
        for chunk in chunks:
            by_tenant.setdefault(validate_collection(chunk.collection), {})[chunk.chunk_id] = chunk
        collection = await self._collection()
        for tenant, unique in by_tenant.items():
            objects = [
                DataObject(properties=_properties_of(c), uuid=generate_uuid5(c.chunk_id), vector=c.vector)
                for c in unique.values()
            ]
            data = collection.with_tenant(tenant).data
            result = await self._call(tenant, functools.partial(data.insert_many, objects))
            if result is not None and result.has_errors and await self.count(tenant) == 0:
                # An emptied tenant keeps its vector index's length; a new model's may differ.
                await self.drop_collection(tenant)
                result = await self._call(tenant, functools.partial(data.insert_many, objects))
            if result is not None and result.has_errors:
                first = next(iter(result.errors.values()))
                raise StoreError(f"upsert into collection {tenant!r} failed: {first.message}")

    async def delete_document(self, collection: str, document_id: str) -> int:
        """Delete a document's chunks; return how many were deleted."""
        tenant = validate_collection(collection)
        handle = (await self._collection()).with_tenant(tenant)
        where = Filter.by_property("document_id").equal(document_id)
        result = await self._call(tenant, lambda: handle.data.delete_many(where=where), missing_ok=True)
        return 0 if result is None else int(result.successful)

    async def count(self, collection: str, document_id: str | None = None) -> int:
        """Chunks in a collection, or in one of its documents."""
        tenant = validate_collection(collection)
        handle = (await self._collection()).with_tenant(tenant)
        where = None if document_id is None else Filter.by_property("document_id").equal(document_id)
        result = await self._call(
            tenant, lambda: handle.aggregate.over_all(total_count=True, filters=where), missing_ok=True
        )
        return 0 if result is None else int(result.total_count or 0)

    async def search(
        self,
        collection: str,
        *,
        text: str,
        vector: Sequence[float],
        k: int,
        mode: SearchMode = SearchMode.HYBRID,
        document_ids: Sequence[str] | None = None,
    ) -> list[Passage]:
        """The `k` best passages: BM25 score, cosine similarity, or fused score (hybrid)."""
        tenant = validate_collection(collection)
        if k < 1 or (document_ids is not None and not document_ids):
            return []
        query = (await self._collection()).with_tenant(tenant).query
        where = (
            None
            if document_ids is None
            else Filter.by_property("document_id").contains_any(list(document_ids))
        )
        scope = _Scope(tenant, query, k, where)
        if mode is SearchMode.VECTOR or (mode is SearchMode.HYBRID and not text.strip()):
            return await self._nearest(scope, vector) if vector else []
        if mode is SearchMode.BM25 or not vector:
            return await self._keyword(scope, text) if text.strip() else []
        return await self._fused(scope, text, vector)

    async def _nearest(self, scope: _Scope, vector: Sequence[float]) -> list[Passage]:
        """Ranked by cosine similarity to `vector`."""
        found = await self._call(
            scope.tenant,
            lambda: scope.query.near_vector(
                near_vector=list(vector),
                limit=scope.k,
                filters=scope.where,
                return_properties=_RETURNED,
                return_metadata=MetadataQuery(distance=True),
            ),
            missing_ok=True,
        )
        return _passages(found, lambda meta: 1.0 - float(meta.distance or 0.0))

    async def _keyword(self, scope: _Scope, text: str) -> list[Passage]:
        """Ranked by the BM25 score of `text`."""
        found = await self._call(
            scope.tenant,
            lambda: scope.query.bm25(
                query=text,
                query_properties=["text"],
                limit=scope.k,
                filters=scope.where,
                return_properties=_RETURNED,
                return_metadata=MetadataQuery(score=True),
            ),
            missing_ok=True,
        )
        return _passages(found, lambda meta: float(meta.score or 0.0))

    async def _fused(self, scope: _Scope, text: str, vector: Sequence[float]) -> list[Passage]:
        """The keyword and vector rankings fused by rank (RRF), weighted by `alpha`."""
        found = await self._call(
            scope.tenant,
            lambda: scope.query.hybrid(
                query=text,
                vector=list(vector),
                alpha=self._alpha,
                query_properties=["text"],
                fusion_type=HybridFusion.RANKED,
                limit=scope.k,
                filters=scope.where,
                return_properties=_RETURNED,
                return_metadata=MetadataQuery(score=True),
            ),
            missing_ok=True,
        )
        return _passages(found, lambda meta: float(meta.score or 0.0))

    async def drop_collection(self, collection: str) -> None:
        """Remove the collection's tenant and its data."""
        tenant = validate_collection(collection)
        handle = await self._collection()
        await self._call(tenant, lambda: handle.tenants.remove([tenant]), missing_ok=True)

    async def drop_all(self) -> None:
        """Delete the whole Weaviate collection, every tenant included (tests, resets)."""
        await self._collection()
        try:
            await self._client.collections.delete(self._name)
        except WeaviateBaseError as exc:
            raise StoreError(f"dropping Weaviate collection {self._name!r} failed: {exc}") from exc
        self._ready = None

    async def close(self) -> None:
        """Close the client's connections."""
        await self._client.close()

    async def _collection(self) -> CollectionAsync[Any, Any]:
        """The Weaviate collection, connecting and creating it on first use."""
        if self._ready is not None:
            return self._ready
        async with self._lock:
            if self._ready is None:
                try:
                    if not self._client.is_connected():
                        await self._client.connect()
                    if not await self._client.collections.exists(self._name):
                        await self._create()
                except WeaviateBaseError as exc:
                    raise StoreError(f"Weaviate is not usable: {exc}") from exc
                self._ready = self._client.collections.use(self._name)
            return self._ready

    async def _create(self) -> None:
        try:
            await self._client.collections.create(
                self._name,
                properties=_properties(),
                vector_config=Configure.Vectors.self_provided(
                    vector_index_config=Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE)
                ),
                multi_tenancy_config=Configure.multi_tenancy(
                    enabled=True, auto_tenant_creation=True, auto_tenant_activation=True
                ),
            )
        except WeaviateBaseError:
            if not await self._client.collections.exists(self._name):  # else another replica won the race
                raise

    async def _call(
        self, tenant: str, operation: Callable[[], Awaitable[Any]], *, missing_ok: bool = False
    ) -> Any:
        """Run a Weaviate call; None when the tenant does not exist and that is fine."""
        try:
            return await operation()
        except WeaviateBaseError as exc:
            try:
                exists = await (await self._collection()).tenants.exists(tenant)
            except WeaviateBaseError:
                exists = True
            if missing_ok and not exists:
                return None
            raise StoreError(f"Weaviate call on collection {tenant!r} failed: {exc}") from exc


def _properties_of(chunk: StoredChunk) -> dict[str, Any]:
    properties = msgspec.structs.asdict(chunk)
    del properties["vector"], properties["collection"]
    properties["heading_path"] = list(chunk.heading_path)
    if chunk.page is None:
        del properties["page"]
    return properties


def _passages(result: QueryReturn[Any, Any] | None, score: Callable[[Any], float]) -> list[Passage]:
    if result is None:
        return []
    return [
        Passage(
            chunk_id=str(obj.properties["chunk_id"]),
            document_id=str(obj.properties["document_id"]),
            file_name=str(obj.properties["file_name"]),
            index=int(obj.properties["index"]),
            text=str(obj.properties["text"]),
            page=None if obj.properties.get("page") is None else int(obj.properties["page"]),
            heading_path=tuple(obj.properties.get("heading_path") or ()),
            char_start=int(obj.properties["char_start"]),
            char_end=int(obj.properties["char_end"]),
            score=score(obj.metadata),
        )
        for obj in result.objects
    ]
