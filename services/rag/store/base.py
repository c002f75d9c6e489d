"""The passage store interface: what rag needs from a vector + full-text store.

Two implementations pass the same conformance suite
(`tests/contract/test_store_conformance.py`): `LanceStore` (embedded, the
default) and `WeaviateStore` (a server, production).

A *collection* is the unit of isolation: one user's (or tenant's)
documents never appear in another collection's results. Its name is a safe
identifier, checked by `validate_collection`, so it can name a table or a
tenant and never reaches a filter string.
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING, Protocol

import msgspec

from services.rag.errors import InvalidCollectionName

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "Passage",
    "PassageStore",
    "SearchMode",
    "StoredChunk",
    "validate_collection",
]

_COLLECTION_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class StoredChunk(msgspec.Struct, frozen=True, kw_only=True):
    """A chunk with its embedding, as written to the store."""

    chunk_id: str
    document_id: str
    collection: str
    file_name: str
    index: int
    text: str
    page: int | None
    heading_path: tuple[str, ...]
    char_start: int
    char_end: int
    vector: list[float]  # normalised (unit length) embedding


class Passage(msgspec.Struct, frozen=True, kw_only=True):
    """A chunk found by a search, with its score (higher is better; scale depends on the mode)."""

    chunk_id: str
    document_id: str
    file_name: str
    index: int
    text: str
    page: int | None
    heading_path: tuple[str, ...]
    char_start: int
    char_end: int
    score: float


class SearchMode(enum.StrEnum):
    """How `PassageStore.search` ranks chunks."""

    HYBRID = "hybrid"  # keyword and vector rankings fused
    BM25 = "bm25"  # keyword relevance only
    VECTOR = "vector"  # cosine similarity of embeddings only


class PassageStore(Protocol):
    """Chunks with embeddings, searchable by keywords, vectors or both, per collection."""

    async def upsert(self, chunks: Sequence[StoredChunk]) -> None:
        """Write chunks; a chunk whose `chunk_id` exists in its collection replaces it."""
        ...

    async def delete_document(self, collection: str, document_id: str) -> int:
        """Remove a document's chunks from a collection; return how many were removed."""
        ...

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
        """The `k` best passages of `collection` (only of `document_ids` if given), best first."""
        ...

    async def count(self, collection: str, document_id: str | None = None) -> int:
        """How many chunks a collection (or one of its documents) holds."""
        ...

    async def drop_collection(self, collection: str) -> None:
        """Remove a collection and everything in it (a missing collection is not an error)."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


def validate_collection(name: str) -> str:
    """Return `name` if it is a safe collection identifier, else raise `InvalidCollectionName`."""
    if not _COLLECTION_RE.fullmatch(name):
        raise InvalidCollectionName(f"invalid collection name {name!r}: use 1-64 letters, digits, '_' or '-'")
    return name
