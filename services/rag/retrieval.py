"""Retrieval: embed the query over the bus, then hybrid search in the passage store.

The caller's `timeout_ms` bounds the whole of it: work still running then is
cancelled and the reply is a `timeout` error, sent before the caller stops
waiting (a store with its own, longer timeout never holds a reply past it).

A hybrid search whose query embedding fails, or takes more than half of the
budget (inference or Triton away, or swamped), is answered by BM25 alone,
and the reply says so (`degraded`): keywords still find the documents. A
vector search has no such fallback, and a collection of another model's
vectors is refused as before (`collection_models.py`).
"""

from __future__ import annotations

import asyncio
import re

import msgspec

from proto.common import ErrorCode
from proto.context import Passage, RetrieveReply, RetrieveRequest
from runtime.errors import ServiceError
from runtime.logging import get_logger
from services.rag.collection_models import CollectionModels, ModelMismatch
from services.rag.embeddings import BusEmbedder, EmbeddingUnavailable
from services.rag.errors import StoreError
from services.rag.store import Passage as FoundPassage
from services.rag.store import PassageStore, SearchMode

__all__ = ["InvalidRetrieveRequest", "RetrieveTimeout", "Retriever", "check_collection_name"]

_log = get_logger(__name__)

_COLLECTION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REPLY_MARGIN = 0.9  # share of the caller's budget spent at most, so the reply reaches it in time
_EMBED_SHARE = 0.5  # of that budget, what a hybrid search's query embedding may take before BM25 alone


class InvalidRetrieveRequest(ServiceError):
    """A retrieve request with a bad collection, mode or k."""

    code = ErrorCode.BAD_REQUEST


class RetrieveTimeout(ServiceError):
    """The query embedding and the search did not finish within the caller's budget."""

    code = ErrorCode.TIMEOUT


def check_collection_name(collection: str) -> None:
    """Collections are short identifiers: letters, digits, `_` and `-`."""
    if not _COLLECTION.match(collection):
        raise InvalidRetrieveRequest(
            f"invalid collection {collection!r}: use 1-64 letters, digits, '_' or '-'"
        )


class Retriever:
    """Answers retrieve requests from one passage store."""

    def __init__(
        self,
        store: PassageStore,
        embedder: BusEmbedder,
        models: CollectionModels,
        *,
        k_max: int,
        max_query_chars: int = 8_000,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._models = models
        self._k_max = k_max
        self._max_query_chars = max_query_chars

    async def retrieve(self, request: RetrieveRequest) -> RetrieveReply:
        """The best passages for the query, best first."""
        check_collection_name(request.collection)
        if not 1 <= request.k <= self._k_max:
            raise InvalidRetrieveRequest(f"k must be between 1 and {self._k_max}")
        try:
            mode = SearchMode(request.mode)
        except ValueError:
            raise InvalidRetrieveRequest(
                f"unknown mode {request.mode!r}: use hybrid, bm25 or vector"
            ) from None
        if not request.query.strip():
            raise InvalidRetrieveRequest("the query is empty")
        if len(request.query) > self._max_query_chars:
            raise InvalidRetrieveRequest(
                f"the query has {len(request.query)} characters, the limit is {self._max_query_chars}"
            )
        if request.timeout_ms <= 0:
            raise InvalidRetrieveRequest(f"timeout_ms must be positive, got {request.timeout_ms}")
        budget_s = request.timeout_ms / 1000 * _REPLY_MARGIN
        try:
            async with asyncio.timeout(budget_s):
                found, degraded = await self._search(request, mode, budget_s=budget_s)
        except TimeoutError:
            raise RetrieveTimeout(f"retrieval did not finish within {request.timeout_ms} ms") from None
        passages = [_cited(hit) for hit in found]
        _log.info("retrieved", collection=request.collection, mode=mode.value, passages=len(passages))
        return RetrieveReply(passages=passages, degraded=degraded)

    async def _search(
        self, request: RetrieveRequest, mode: SearchMode, *, budget_s: float
    ) -> tuple[list[FoundPassage], str]:
        """The passages found, and why the ranking is BM25's alone when hybrid was asked ("" if not)."""
        vector: list[float] = []
        degraded = ""
        try:
            if mode is SearchMode.HYBRID:
                try:
                    async with asyncio.timeout(budget_s * _EMBED_SHARE):
                        vector = await self._query_vector(request, budget_s * _EMBED_SHARE)
                except (EmbeddingUnavailable, TimeoutError) as exc:
                    why = exc.detail if isinstance(exc, EmbeddingUnavailable) else "it took too long"
                    degraded = f"keyword search only: the query could not be embedded ({why})"
                    _log.warning("hybrid search without vectors", collection=request.collection, reason=why)
                    mode = SearchMode.BM25
            elif mode is SearchMode.VECTOR:
                vector = await self._query_vector(request, budget_s)
            found = await self._store.search(
                request.collection,
                text=request.query,
                vector=vector,
                k=request.k,
                mode=mode,
                document_ids=request.document_ids,
            )
        except (ModelMismatch, StoreError) as exc:
            raise ServiceError(exc.detail, code=ErrorCode.UNAVAILABLE) from exc
        return found, degraded

    async def _query_vector(self, request: RetrieveRequest, timeout_s: float) -> list[float]:
        """The query's vector; `ModelMismatch` when the collection holds another model's."""
        embedded = await self._embedder.embed([request.query], timeout_s=timeout_s)
        await self._models.check(request.collection, embedded.model)
        return embedded.vectors[0]


def _cited(hit: FoundPassage) -> Passage:
    """A found passage as a reply carries it: no chunk id, and the store's `index` named `chunk_index`."""
    fields = msgspec.structs.asdict(hit)
    del fields["chunk_id"]
    fields["chunk_index"] = fields.pop("index")
    fields["heading_path"] = list(hit.heading_path)
    return Passage(**fields)
