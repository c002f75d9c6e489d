"""Retrieval: embed the query over the bus, then hybrid search in the passage store.

The caller's `timeout_ms` bounds the whole of it: work still running then is
cancelled and the reply is a `timeout` error, sent before the caller stops
waiting (a store with its own, longer timeout never holds a reply past it).
"""

from __future__ import annotations

import asyncio
import re

from proto.common import ErrorCode
from proto.context import Passage, RetrieveReply, RetrieveRequest
from runtime.errors import ServiceError
from runtime.logging import get_logger
from services.rag.collection_models import CollectionModels, ModelMismatch
from services.rag.embeddings import BusEmbedder
from services.rag.errors import StoreError
from services.rag.store import Passage as FoundPassage
from services.rag.store import PassageStore, SearchMode

__all__ = ["InvalidRetrieveRequest", "RetrieveTimeout", "Retriever", "check_collection_name"]

_log = get_logger(__name__)

_COLLECTION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REPLY_MARGIN = 0.9  # share of the caller's budget spent at most, so the reply reaches it in time


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
                found = await self._search(request, mode, embed_timeout_s=budget_s)
        except TimeoutError:
            raise RetrieveTimeout(f"retrieval did not finish within {request.timeout_ms} ms") from None
        passages = [
            Passage(
                document_id=hit.document_id,
                file_name=hit.file_name,
                chunk_index=hit.index,
                text=hit.text,
                score=hit.score,
                page=hit.page,
                heading_path=list(hit.heading_path),
                char_start=hit.char_start,
                char_end=hit.char_end,
            )
            for hit in found
        ]
        _log.info("retrieved", collection=request.collection, mode=mode.value, passages=len(passages))
        return RetrieveReply(passages=passages)

    async def _search(
        self, request: RetrieveRequest, mode: SearchMode, *, embed_timeout_s: float
    ) -> list[FoundPassage]:
        vector: list[float] = []
        try:
            if mode is not SearchMode.BM25:
                embedded = await self._embedder.embed([request.query], timeout_s=embed_timeout_s)
                await self._models.check(request.collection, embedded.model)
                vector = embedded.vectors[0]
            return await self._store.search(
                request.collection,
                text=request.query,
                vector=vector,
                k=request.k,
                mode=mode,
                document_ids=request.document_ids,
            )
        except (ModelMismatch, StoreError) as exc:
            raise ServiceError(exc.detail, code=ErrorCode.UNAVAILABLE) from exc
