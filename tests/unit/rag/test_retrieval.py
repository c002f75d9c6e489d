"""The retriever's checks and its deadline, with a stand-in embedder and store (one handler alone).

The path through the real bus, Triton and LanceDB is tested in tests/integration/test_rag_ingest.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import pytest

from proto.common import ErrorCode
from proto.context import RetrieveRequest
from services.rag.collection_models import CollectionModels
from services.rag.embeddings import BusEmbedder, Embeddings, EmbeddingUnavailable
from services.rag.retrieval import InvalidRetrieveRequest, Retriever, RetrieveTimeout
from services.rag.store import Passage, PassageStore, SearchMode

FOUND = Passage(
    chunk_id="c0",
    document_id="d",
    file_name="d.txt",
    index=0,
    text="Glaciers carve valleys.",
    page=None,
    heading_path=("Ice",),
    char_start=0,
    char_end=23,
    score=1.0,
)


class Embedder:
    """Counts calls; blocks until released when `stuck`."""

    def __init__(self, *, stuck: bool = False) -> None:
        self.calls = 0
        self._release = asyncio.Event()
        if not stuck:
            self._release.set()

    async def embed(self, texts: Sequence[str], *, timeout_s: float | None = None) -> Embeddings:
        self.calls += 1
        await self._release.wait()
        return Embeddings(model="m", vectors=[[1.0, 0.0] for _ in texts])


class Models:
    """Every collection's vectors are of the query's model (test_collection_models.py checks the record)."""

    async def check(self, collection: str, model: str) -> None:
        return None


class Store:
    """Answers every search with FOUND; blocks forever when `stuck` (a store with its own long timeout)."""

    def __init__(self, *, stuck: bool = False) -> None:
        self.stuck = stuck
        self.modes: list[SearchMode] = []

    async def search(self, collection: str, **kwargs: Any) -> list[Passage]:
        self.modes.append(kwargs["mode"])
        if self.stuck:
            await asyncio.Event().wait()
        return [FOUND]


def _retriever(embedder: Embedder, store: Store) -> Retriever:
    return Retriever(
        cast(PassageStore, store),
        cast(BusEmbedder, embedder),
        cast(CollectionModels, Models()),
        k_max=10,
        max_query_chars=100,
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"k": 0}, "k must be between"),
        ({"k": 11}, "k must be between"),
        ({"mode": "fuzzy"}, "unknown mode"),
        ({"query": "   "}, "empty"),
        ({"query": "x" * 101}, "the limit is 100"),
        ({"collection": "no spaces"}, "invalid collection"),
        ({"timeout_ms": 0}, "timeout_ms must be positive"),
    ],
)
async def test_a_bad_request_gets_its_reason(changes: dict[str, Any], reason: str) -> None:
    request = RetrieveRequest(**{"query": "glaciers", **changes})
    with pytest.raises(InvalidRetrieveRequest, match=reason):
        await _retriever(Embedder(), Store()).retrieve(request)


async def test_bm25_needs_no_embedding() -> None:
    embedder, store = Embedder(), Store()
    reply = await _retriever(embedder, store).retrieve(RetrieveRequest(query="glaciers", mode="bm25"))
    assert [p.chunk_index for p in reply.passages] == [0]
    assert reply.passages[0].heading_path == ["Ice"]
    assert embedder.calls == 0
    assert store.modes == [SearchMode.BM25]


@pytest.mark.parametrize(("stuck", "mode"), [("store", "hybrid"), ("embedder", "vector")])
async def test_a_stuck_dependency_is_a_timeout_before_the_callers_deadline(stuck: str, mode: str) -> None:
    retriever = _retriever(Embedder(stuck=stuck == "embedder"), Store(stuck=stuck == "store"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RetrieveTimeout) as raised:
        await retriever.retrieve(RetrieveRequest(query="glaciers", timeout_ms=1000, mode=mode))
    assert raised.value.code == ErrorCode.TIMEOUT
    assert loop.time() - started < 1.0  # the reply leaves before the caller stops waiting (at 0.9 s)


class DeadEmbedder(Embedder):
    async def embed(self, texts: Sequence[str], *, timeout_s: float | None = None) -> Embeddings:
        self.calls += 1
        raise EmbeddingUnavailable("inference did not embed (NoRespondersError)")


@pytest.mark.parametrize("embedder", [Embedder(stuck=True), DeadEmbedder()], ids=["stuck", "dead"])
async def test_hybrid_without_a_query_vector_is_answered_by_bm25_and_says_so(embedder: Embedder) -> None:
    store = Store()
    loop = asyncio.get_running_loop()
    started = loop.time()
    reply = await _retriever(embedder, store).retrieve(RetrieveRequest(query="glaciers", timeout_ms=1000))
    assert loop.time() - started < 0.9
    assert [p.chunk_index for p in reply.passages] == [0]
    assert store.modes == [SearchMode.BM25]
    assert reply.degraded.startswith("keyword search only: the query could not be embedded")
    assert ("NoRespondersError" in reply.degraded) is isinstance(embedder, DeadEmbedder)


async def test_a_vector_search_without_a_query_vector_is_unavailable() -> None:
    with pytest.raises(EmbeddingUnavailable):
        await _retriever(DeadEmbedder(), Store()).retrieve(RetrieveRequest(query="glaciers", mode="vector"))


async def test_a_hybrid_reply_with_its_vectors_is_not_degraded() -> None:
    store = Store()
    reply = await _retriever(Embedder(), store).retrieve(RetrieveRequest(query="glaciers"))
    assert (store.modes, reply.degraded) == ([SearchMode.HYBRID], "")
