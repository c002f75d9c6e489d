"""Upkeep of the LanceDB store's tables: compaction, full-text index refresh, the HNSW index.

Every LanceDB write is a fragment of its own, and rows not yet in the full-text
index are scanned by every query. A table is brought up to date (`optimize()`:
compaction and index refresh):

- at once, when a write leaves `optimize_after_rows` rows unindexed;
- `settle_after_s` after a collection's last write or delete (`settle.py`
  says why a row count alone is not enough);
- when this process first opens a table that has unindexed rows (written by
  another process, or by this one before a restart, and never settled).

The HNSW vector index is built once a collection holds
`vector_index_min_rows` chunks. One upkeep runs at a time per store: two at
once (say, a settle and an index build) conflict in LanceDB.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from runtime.logging import get_logger
from services.rag.store.settle import QuietTimer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from lancedb.table import AsyncTable

__all__ = ["FTS_INDEX", "VECTOR_INDEX", "LanceUpkeep"]

_log = get_logger(__name__)
FTS_INDEX = "text_idx"
VECTOR_INDEX = "vector_idx"
_LANCE_ERRORS = (OSError, RuntimeError, ValueError)


class LanceUpkeep:
    """Keeps a store's tables compacted and indexed; failures are logged, never raised to writers."""

    def __init__(
        self,
        open_table: Callable[[str], Awaitable[AsyncTable | None]],
        *,
        optimize_after_rows: int,
        settle_after_s: float,
        vector_index_min_rows: int,
    ) -> None:
        self._open_table = open_table
        self._optimize_after_rows = optimize_after_rows
        self._vector_index_min_rows = vector_index_min_rows
        self._timer = QuietTimer(self._settle, settle_after_s)
        self._written: set[str] = set()  # collections written to since their last upkeep
        self._lock = asyncio.Lock()

    def opened(self, collection: str) -> None:
        """This process opened the collection's table for the first time."""
        self._timer.mark(collection)

    def deleted(self, collection: str) -> None:
        """Rows were deleted (they stay in their fragments until compacted)."""
        self._written.add(collection)
        self._timer.mark(collection)

    async def written(self, collection: str, table: AsyncTable) -> None:
        """Rows were written: optimise now if many are unindexed, else once writes go quiet."""
        try:
            async with self._lock:
                stats = await table.index_stats(FTS_INDEX)
                if stats is not None and stats.num_unindexed_rows >= self._optimize_after_rows:
                    await table.optimize()
                await self._ensure_vector_index(collection, table)
        except _LANCE_ERRORS as exc:
            _log.warning("lance_optimize_failed", collection=collection, error=str(exc))
        self._written.add(collection)
        self._timer.mark(collection)

    async def run(self, collection: str, table: AsyncTable) -> None:
        """Compact the table and fold every row into its indexes now."""
        async with self._lock:
            await table.optimize()
            await self._ensure_vector_index(collection, table)

    async def wait(self) -> None:
        """Return once the upkeep due after recent writes has run (tests)."""
        await self._timer.wait()

    async def cancel(self) -> None:
        """Drop the pending upkeep (the store is closing)."""
        await self._timer.cancel()

    async def _settle(self, collection: str) -> None:
        written = collection in self._written
        self._written.discard(collection)
        try:
            table = await self._open_table(collection)
            if table is None:
                return
            if not written:  # only opened: settle only what an earlier writer left unindexed
                stats = await table.index_stats(FTS_INDEX)
                if stats is None or stats.num_unindexed_rows == 0:
                    return
            await self.run(collection, table)
        except _LANCE_ERRORS as exc:
            _log.warning("lance_optimize_failed", collection=collection, error=str(exc))

    async def _ensure_vector_index(self, collection: str, table: AsyncTable) -> None:
        """Build the HNSW index once the collection is big enough for exact search to be slow."""
        from lancedb.index import HnswFlat

        if any(index.name == VECTOR_INDEX for index in await table.list_indices()):
            return
        rows = await table.count_rows()
        if rows < self._vector_index_min_rows:
            return
        await table.create_index(
            "vector", config=HnswFlat(distance_type="cosine", num_partitions=1), name=VECTOR_INDEX
        )
        _log.info("lance_vector_index_built", collection=collection, rows=rows)
