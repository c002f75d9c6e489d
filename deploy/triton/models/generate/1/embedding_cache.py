"""A bounded LRU cache of sentence embeddings, keyed by a hash of the sentence text.

The same pages and passages are cited again and again (a popular page, the
passages retrieval returns for similar questions), so their sentences need
embedding once.  A key is the 16-byte BLAKE2b digest of the UTF-8 text, a
value one float32 vector: 384-d vectors take about 1.7 kB an entry with the
bookkeeping, so 20,000 entries hold about 35 MB.  Not thread-safe: the
``generate`` model serves every request on one event loop.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["EmbeddingCache", "Vectors", "stack_vectors"]

Vectors = npt.NDArray[np.float32]


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def stack_vectors(texts: Sequence[str], vectors: dict[str, Vectors]) -> Vectors:
    """The rows of ``vectors`` for ``texts``, in order (shape [len(texts), d])."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([vectors[text] for text in texts])


class EmbeddingCache:
    """At most ``max_entries`` vectors, least recently used evicted first (0 disables the cache)."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, not {max_entries}")
        self.max_entries = max_entries
        self.hits = 0  # texts answered from the cache
        self.misses = 0  # texts that had to be embedded
        self._vectors: OrderedDict[bytes, Vectors] = OrderedDict()

    def __len__(self) -> int:
        return len(self._vectors)

    def lookup(self, texts: Sequence[str]) -> tuple[dict[str, Vectors], list[str]]:
        """The cached vectors of ``texts`` (now most recently used) and the distinct texts still missing."""
        found: dict[str, Vectors] = {}
        missing: dict[str, None] = {}  # an ordered set
        for text in texts:
            if text in found or text in missing:
                continue
            key = _key(text)
            vector = self._vectors.get(key)
            if vector is None:
                missing[text] = None
                continue
            self._vectors.move_to_end(key)
            found[text] = vector
        self.hits += len(found)
        self.misses += len(missing)
        return found, list(missing)

    def store(self, texts: Sequence[str], vectors: Vectors) -> dict[str, Vectors]:
        """Remember one vector per text (rows of ``vectors``); returns them by text."""
        if len(texts) != len(vectors):
            raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")
        pairs = zip(texts, vectors, strict=True)
        fresh = {text: np.array(vector, dtype=np.float32) for text, vector in pairs}
        if self.max_entries == 0:
            return fresh
        for text, vector in fresh.items():
            key = _key(text)
            self._vectors[key] = vector
            self._vectors.move_to_end(key)
        while len(self._vectors) > self.max_entries:
            self._vectors.popitem(last=False)
        return fresh

    def embed(self, texts: Sequence[str], compute: Callable[[list[str]], Vectors]) -> Vectors:
        """Vectors of ``texts`` (shape [len(texts), d]), calling ``compute`` only for the missing ones."""
        found, missing = self.lookup(texts)
        if missing:
            found.update(self.store(missing, compute(missing)))
        return stack_vectors(texts, found)
