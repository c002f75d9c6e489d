"""The behaviours every `PassageStore` must have, as a suite subclassed per implementation.

A subclass provides a `store` fixture (a fresh, empty store). Vectors come
from a hashed bag of words, normalised to 384 dimensions: no model needed,
and texts that share words get similar vectors.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Sequence

import msgspec
import pytest

from services.rag.errors import InvalidCollectionName
from services.rag.store import PassageStore, SearchMode, StoredChunk

__all__ = ["DIMENSION", "StoreConformanceSuite", "embed", "make_chunks", "unit_vector"]

DIMENSION = 384
ALL_MODES = list(SearchMode)

TOPICS = [
    "The lighthouse keeper climbed the spiral stairs every evening to light the lamp.",
    "Sourdough bread needs a lively starter, patience and a very hot oven.",
    "Glaciers carve deep valleys as they slowly grind across the mountains.",
    "The orchestra tuned their violins while the conductor studied the score.",
    "Honeybees communicate the location of flowers through a waggle dance.",
    "Compound interest makes small regular savings grow surprisingly large.",
    "The chess grandmaster sacrificed a knight to open the enemy king.",
    "Volcanic soil is rich in minerals that vineyards love.",
]


def embed(text: str) -> list[float]:
    """A deterministic unit vector: each lower-cased word adds a signed hashed dimension."""
    vector = [0.0] * DIMENSION
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[digest[0] * 256 % DIMENSION + digest[1] % 2] += 1.0 if digest[2] % 2 else -1.0
    return _normalise(vector)


def unit_vector(*weights: tuple[int, float]) -> list[float]:
    """A unit vector with the given (dimension, weight) components."""
    vector = [0.0] * DIMENSION
    for dimension, weight in weights:
        vector[dimension] = weight
    return _normalise(vector)


def _normalise(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def make_chunks(
    collection: str, document_id: str, texts: Sequence[str], vectors: Sequence[list[float]] | None = None
) -> list[StoredChunk]:
    """Chunks 0..n-1 of one document, embedded with `embed` unless vectors are given."""
    return [
        StoredChunk(
            chunk_id=f"{document_id}:{index}",
            document_id=document_id,
            collection=collection,
            file_name=f"{document_id}.txt",
            index=index,
            text=text,
            page=index + 1 if index % 2 else None,
            heading_path=("Doc", f"Part {index}"),
            char_start=index * 1000,
            char_end=index * 1000 + len(text),
            vector=vectors[index] if vectors is not None else embed(text),
        )
        for index, text in enumerate(texts)
    ]


def new_collection() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


async def _search(
    store: PassageStore,
    collection: str,
    text: str,
    mode: SearchMode,
    k: int = 5,
    document_ids: Sequence[str] | None = None,
    vector: list[float] | None = None,
) -> list[str]:
    passages = await store.search(
        collection,
        text=text,
        vector=vector if vector is not None else embed(text),
        k=k,
        mode=mode,
        document_ids=document_ids,
    )
    return [p.chunk_id for p in passages]


class StoreConformanceSuite:
    """Subclass it and provide a `store` fixture."""

    async def test_upsert_is_idempotent_by_chunk_id(self, store: PassageStore) -> None:
        collection = new_collection()
        chunks = make_chunks(collection, "doc", TOPICS)
        await store.upsert(chunks)
        await store.upsert(chunks)
        assert await store.count(collection) == len(TOPICS)
        changed = make_chunks(collection, "doc", ["Penguins huddle together through the polar winter."])
        await store.upsert(changed)
        assert await store.count(collection) == len(TOPICS)
        found = await store.search(
            collection, text="penguins huddle", vector=embed("penguins"), k=1, mode=SearchMode.BM25
        )
        assert [p.chunk_id for p in found] == ["doc:0"]
        assert found[0].text.startswith("Penguins")

    async def test_count_per_document(self, store: PassageStore) -> None:
        collection = new_collection()
        await store.upsert(
            make_chunks(collection, "a", TOPICS[:3]) + make_chunks(collection, "b", TOPICS[3:])
        )
        assert await store.count(collection) == len(TOPICS)
        assert await store.count(collection, "a") == 3
        assert await store.count(collection, "b") == len(TOPICS) - 3
        assert await store.count(collection, "missing") == 0

    @pytest.mark.parametrize("mode", ALL_MODES)
    async def test_every_mode_finds_an_exact_phrase(self, store: PassageStore, mode: SearchMode) -> None:
        collection = new_collection()
        await store.upsert(make_chunks(collection, "doc", TOPICS))
        phrase = "Honeybees communicate the location of flowers through a waggle dance"
        passages = await store.search(collection, text=phrase, vector=embed(phrase), k=3, mode=mode)
        assert passages[0].chunk_id == "doc:4"
        best = passages[0]
        assert (best.document_id, best.file_name, best.index, best.text) == ("doc", "doc.txt", 4, TOPICS[4])
        assert (best.page, best.heading_path) == (None, ("Doc", "Part 4"))
        assert (best.char_start, best.char_end) == (4000, 4000 + len(TOPICS[4]))
        scores = [p.score for p in passages]
        assert scores == sorted(scores, reverse=True)

    async def test_hybrid_fuses_both_rankings(self, store: PassageStore) -> None:
        collection = new_collection()
        query_vector = unit_vector((0, 1.0))
        texts = [
            "zebra zebra zebra stripes",  # keyword match only
            "an unrelated sentence about clouds",  # vector match only
            "a zebra grazing quietly",  # both
        ]
        vectors = [unit_vector((7, 1.0)), query_vector, unit_vector((0, 1.0), (1, 0.3))]
        await store.upsert(make_chunks(collection, "doc", texts, vectors))
        await store.upsert(make_chunks(collection, "filler", TOPICS))
        ids = await _search(store, collection, "zebra", SearchMode.HYBRID, k=3, vector=query_vector)
        assert ids[0] == "doc:2"
        assert set(ids) == {"doc:0", "doc:1", "doc:2"}
        assert "doc:1" not in await _search(store, collection, "zebra", SearchMode.BM25, vector=query_vector)
        vector_ids = await _search(store, collection, "zebra", SearchMode.VECTOR, k=2, vector=query_vector)
        assert vector_ids == ["doc:1", "doc:2"]

    async def test_collections_are_isolated(self, store: PassageStore) -> None:
        mine, theirs = new_collection(), new_collection()
        await store.upsert(make_chunks(mine, "private", TOPICS))
        await store.upsert(make_chunks(theirs, "public", ["Honeybees are lovely."]))
        for mode in ALL_MODES:
            ids = await _search(store, theirs, "honeybees waggle dance", mode)
            assert ids == ["public:0"]
        assert await store.count(theirs) == 1
        assert await store.count(theirs, "private") == 0
        assert await store.delete_document(theirs, "private") == 0
        assert await store.count(mine) == len(TOPICS)

    async def test_document_filter(self, store: PassageStore) -> None:
        collection = new_collection()
        await store.upsert(make_chunks(collection, "a", TOPICS) + make_chunks(collection, "b", TOPICS))
        for mode in ALL_MODES:
            ids = await _search(store, collection, "sourdough bread oven", mode, k=20, document_ids=["b"])
            assert ids
            assert all(i.startswith("b:") for i in ids)
            assert await _search(store, collection, "sourdough", mode, document_ids=[]) == []

    async def test_filter_values_are_not_injectable(self, store: PassageStore) -> None:
        collection = new_collection()
        tricky = "x' OR '1'='1"
        await store.upsert(make_chunks(collection, tricky, TOPICS[:2]) + make_chunks(collection, "y", TOPICS))
        assert await store.count(collection, tricky) == 2
        ids = await _search(store, collection, "lighthouse", SearchMode.BM25, k=20, document_ids=[tricky])
        assert ids == [f"{tricky}:0"]
        assert await store.delete_document(collection, tricky) == 2
        assert await store.count(collection) == len(TOPICS)

    async def test_delete_then_search_finds_nothing_of_it(self, store: PassageStore) -> None:
        collection = new_collection()
        await store.upsert(make_chunks(collection, "gone", TOPICS) + make_chunks(collection, "kept", TOPICS))
        assert await store.delete_document(collection, "gone") == len(TOPICS)
        for mode in ALL_MODES:
            ids = await _search(store, collection, "glaciers carve valleys", mode, k=50)
            assert ids
            assert not [i for i in ids if i.startswith("gone:")]
        assert await store.count(collection, "gone") == 0
        assert await store.delete_document(collection, "gone") == 0

    async def test_an_emptied_collection_takes_vectors_of_another_length(self, store: PassageStore) -> None:
        # what a change of embedding model does: delete the documents, upload them again
        collection = new_collection()
        await store.upsert(make_chunks(collection, "old", TOPICS))
        assert await store.delete_document(collection, "old") == len(TOPICS)
        renewed = make_chunks(collection, "new", TOPICS)
        one_hot = [[float(i == n) for i in range(8)] for n in range(len(renewed))]
        short = [msgspec.structs.replace(c, vector=v) for c, v in zip(renewed, one_hot, strict=True)]
        await store.upsert(short)
        assert await store.count(collection) == len(TOPICS)
        found = await store.search(collection, text="", vector=short[2].vector, k=1, mode=SearchMode.VECTOR)
        assert [p.chunk_id for p in found] == ["new:2"]

    @pytest.mark.parametrize("mode", ALL_MODES)
    async def test_k_is_respected(self, store: PassageStore, mode: SearchMode) -> None:
        collection = new_collection()
        await store.upsert(make_chunks(collection, "doc", [f"{t} the the" for t in TOPICS]))
        texts = " ".join(TOPICS)
        assert len(await _search(store, collection, texts, mode, k=2)) == 2
        assert len(await _search(store, collection, texts, mode, k=50)) <= len(TOPICS)

    @pytest.mark.parametrize("mode", ALL_MODES)
    async def test_empty_collection(self, store: PassageStore, mode: SearchMode) -> None:
        collection = new_collection()
        assert await _search(store, collection, "anything", mode) == []
        assert await store.count(collection) == 0
        assert await store.delete_document(collection, "doc") == 0

    async def test_drop_collection(self, store: PassageStore) -> None:
        collection = new_collection()
        await store.upsert(make_chunks(collection, "doc", TOPICS))
        await store.drop_collection(collection)
        assert await store.count(collection) == 0
        assert await _search(store, collection, "lighthouse", SearchMode.HYBRID) == []
        await store.drop_collection(collection)  # dropping a missing collection is fine

    @pytest.mark.parametrize("name", ["", "a b", "x'; --", "../etc", "Ä", "a" * 65])
    async def test_unsafe_collection_names_are_refused(self, store: PassageStore, name: str) -> None:
        with pytest.raises(InvalidCollectionName):
            await store.count(name)
        with pytest.raises(InvalidCollectionName):
            await store.upsert(make_chunks(name, "doc", ["text"]))
