"""Where chunks live: one `PassageStore` interface, LanceDB (embedded) or Weaviate (server)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.rag.store.base import Passage, PassageStore, SearchMode, StoredChunk, validate_collection

if TYPE_CHECKING:
    from services.rag.settings import RagSettings

__all__ = [
    "Passage",
    "PassageStore",
    "SearchMode",
    "StoredChunk",
    "open_store",
    "validate_collection",
]


def open_store(settings: RagSettings) -> PassageStore:
    """Weaviate when `settings.weaviate_url` is set, else LanceDB in `settings.data_dir`.

    Nothing is connected yet: each store connects on first use.
    """
    if settings.weaviate_url:
        from services.rag.store.weaviate import WeaviateStore

        return WeaviateStore.from_settings(settings)
    from services.rag.store.lance import LanceStore

    return LanceStore(
        settings.data_dir,
        timeout_s=settings.store_timeout_s,
        candidate_factor=settings.candidate_factor,
        optimize_after_rows=settings.optimize_after_rows,
        settle_after_s=settings.settle_after_s,
        vector_index_min_rows=settings.vector_index_min_rows,
        vector_index_ef=settings.vector_index_ef,
    )
