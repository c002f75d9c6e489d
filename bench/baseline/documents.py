"""The baseline's documents: chunk texts and their vectors in memory, searched with numpy.

The seed keeps vectors in a vector database; in one process the closest
equivalent is an exact cosine search over a matrix (cheaper than the
system's hybrid BM25 + vector search, which favours the baseline). The
chunks and vectors are written once by the benchmark (`save`), computed
from the same chunking of the same documents as the system's rag store.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DocumentChunk", "DocumentIndex"]

_CHUNKS_FILE = "chunks.json"
_VECTORS_FILE = "vectors.npy"


@dataclass(frozen=True)
class DocumentChunk:
    """A passage of a document, as a chat cites it."""

    file_name: str
    index: int
    text: str


class DocumentIndex:
    """Chunks and their unit vectors; `search` returns the `k` most similar chunks."""

    def __init__(
        self, chunks: Sequence[DocumentChunk], vectors: np.ndarray[Any, np.dtype[np.float32]]
    ) -> None:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        self.chunks = list(chunks)
        self._vectors = np.asarray(vectors, dtype=np.float32)

    def search(self, query: np.ndarray[Any, np.dtype[np.float32]], k: int) -> list[DocumentChunk]:
        """The `k` chunks closest to `query` (a unit vector), best first."""
        if not self.chunks:
            return []
        scores = self._vectors @ query
        k = min(k, len(self.chunks))
        best = np.argpartition(-scores, k - 1)[:k]
        return [self.chunks[i] for i in sorted(best, key=lambda i: -float(scores[i]))]

    def save(self, directory: Path) -> None:
        """Write the index to `directory` (created if missing)."""
        directory.mkdir(parents=True, exist_ok=True)
        rows = [{"file_name": c.file_name, "index": c.index, "text": c.text} for c in self.chunks]
        (directory / _CHUNKS_FILE).write_text(json.dumps(rows), encoding="utf-8")
        np.save(directory / _VECTORS_FILE, self._vectors)

    @classmethod
    def load(cls, directory: Path) -> DocumentIndex:
        """Read an index written by `save`."""
        rows = json.loads((directory / _CHUNKS_FILE).read_text(encoding="utf-8"))
        chunks = [DocumentChunk(row["file_name"], int(row["index"]), row["text"]) for row in rows]
        return cls(chunks, np.load(directory / _VECTORS_FILE))
