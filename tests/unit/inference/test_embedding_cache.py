"""The generate model's LRU cache of sentence embeddings."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from embedding_cache import EmbeddingCache


class _CountingEmbedder:
    """A deterministic stand-in for the embed model that records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        return np.array([[len(t), ord(t[0]), 1.0] for t in texts], dtype=np.float32)


def test_only_missing_texts_are_embedded_once() -> None:
    cache, embedder = EmbeddingCache(10), _CountingEmbedder()
    first = cache.embed(["alpha", "beta", "alpha"], embedder)
    second = cache.embed(["beta", "gamma"], embedder)
    assert embedder.calls == [["alpha", "beta"], ["gamma"]]
    assert first.shape == (3, 3) and np.array_equal(first[0], first[2])
    assert np.array_equal(second[0], first[1])
    assert (cache.hits, cache.misses, len(cache)) == (1, 3, 3)


def test_least_recently_used_is_evicted_first() -> None:
    cache, embedder = EmbeddingCache(2), _CountingEmbedder()
    cache.embed(["a1", "b1"], embedder)
    cache.embed(["a1"], embedder)  # a1 is now the most recent
    cache.embed(["c1"], embedder)  # evicts b1
    embedder.calls.clear()
    cache.embed(["a1", "b1", "c1"], embedder)
    assert embedder.calls == [["b1"]]
    assert len(cache) == 2


def test_a_batch_larger_than_the_cache_is_still_answered_whole() -> None:
    cache, embedder = EmbeddingCache(1), _CountingEmbedder()
    vectors = cache.embed(["x1", "y22", "z333"], embedder)
    assert [float(v[0]) for v in vectors] == [2.0, 3.0, 4.0]
    assert len(cache) == 1


def test_zero_entries_disables_and_negative_is_refused() -> None:
    cache, embedder = EmbeddingCache(0), _CountingEmbedder()
    cache.embed(["same"], embedder)
    cache.embed(["same"], embedder)
    assert embedder.calls == [["same"], ["same"]] and len(cache) == 0
    assert cache.embed([], embedder).shape[0] == 0
    with pytest.raises(ValueError, match="max_entries"):
        EmbeddingCache(-1)
    with pytest.raises(ValueError, match="2 texts but 1 vectors"):
        cache.store(["a", "b"], np.zeros((1, 3), dtype=np.float32))
