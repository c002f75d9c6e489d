"""The embedded passage store: LanceDB (async API) in a local folder.

One table per collection, named after it. Why not one table with a
`collection` column: isolation holds by construction (no query can forget
the filter), BM25 statistics are per collection (another user's documents
do not change your scores), and dropping a collection is dropping a table.
Collection names are validated identifiers, so they are safe as table names.

Each table has a full-text (BM25) index on `text`, built when the table is
created; rows added later are still searched (LanceDB scans unindexed rows)
until the table's upkeep folds them in (`lance_upkeep.py`: when, and why).
Vector search is exact cosine until a collection holds
`vector_index_min_rows` chunks; then an HNSW-FLAT index (raw vectors, one
partition) is built: an exact scan costs about 1 ms per 1,000 rows here, the
index about 3 ms at 10k rows (recall checked by `just bench rag`). Hybrid
search runs BM25 and vector queries concurrently and fuses them with
reciprocal rank fusion (`fusion.py`). Filters are built with LanceDB's
expression API (`lancedb.expr`), never by pasting values into SQL.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

import pyarrow as pa

from runtime.logging import get_logger
from services.rag.errors import StoreError
from services.rag.store.base import Passage, SearchMode, StoredChunk, validate_collection
from services.rag.store.fusion import reciprocal_rank_fusion
from services.rag.store.lance_rows import PASSAGE_COLUMNS, chunk_row, passage_of, table_schema, with_score
from services.rag.store.lance_upkeep import FTS_INDEX, LanceUpkeep

if TYPE_CHECKING:
    from collections.abc import Sequence

    from lancedb.db import AsyncConnection
    from lancedb.expr import Expr
    from lancedb.table import AsyncTable

__all__ = ["LanceStore"]

_log = get_logger(__name__)


class LanceStore:
    """`PassageStore` on an embedded LanceDB folder, shared safely with other processes."""

    def __init__(
        self,
        data_dir: str,
        *,
        timeout_s: float = 10.0,
        candidate_factor: int = 4,
        optimize_after_rows: int = 1000,
        settle_after_s: float = 2.0,
        vector_index_min_rows: int = 5000,
        vector_index_ef: int = 64,
    ) -> None:
        self._data_dir = data_dir
        self._timeout = timedelta(seconds=timeout_s)
        self._candidate_factor = candidate_factor
        self._vector_index_ef = vector_index_ef
        self._db: AsyncConnection | None = None
        self._tables: dict[str, AsyncTable] = {}
        self._lock = asyncio.Lock()  # serialises connecting and table creation in this process
        self._upkeep = LanceUpkeep(
            self._open,
            optimize_after_rows=optimize_after_rows,
            settle_after_s=settle_after_s,
            vector_index_min_rows=vector_index_min_rows,
        )

    async def upsert(self, chunks: Sequence[StoredChunk]) -> None:
        """Insert or replace chunks by `chunk_id`, one merge per collection."""
        by_collection: dict[str, dict[str, StoredChunk]] = {}
        for chunk in chunks:
            by_collection.setdefault(validate_collection(chunk.collection), {})[chunk.chunk_id] = chunk
        for collection, unique in by_collection.items():
            rows = list(unique.values())
            dimension = len(rows[0].vector)
            if any(len(row.vector) != dimension for row in rows):
                raise StoreError("chunks of one upsert have vectors of different lengths")
            table = await self._open_or_create(collection, dimension)
            await self._fit_vectors(collection, table, dimension)
            data = pa.Table.from_pylist([chunk_row(row) for row in rows], schema=table_schema(dimension))
            try:
                await (
                    table.merge_insert("chunk_id")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute(data)
                )
            except (OSError, RuntimeError, ValueError) as exc:
                raise StoreError(f"upsert into collection {collection!r} failed: {exc}") from exc
            await self._upkeep.written(collection, table)

    async def delete_document(self, collection: str, document_id: str) -> int:
        """Delete a document's chunks; return how many there were."""
        from lancedb.expr import col, lit

        table = await self._open(validate_collection(collection))
        if table is None:
            return 0
        try:
            result = await table.delete(col("document_id") == lit(document_id))
        except (OSError, RuntimeError, ValueError) as exc:
            raise StoreError(f"removing document chunks in collection {collection!r} failed: {exc}") from exc
        self._upkeep.deleted(collection)
        # `num_deleted_rows` is missing from LanceDB's type stubs, present at run time.
        return int(getattr(result, "num_deleted_rows"))  # noqa: B009

    async def count(self, collection: str, document_id: str | None = None) -> int:
        """Chunks in a collection, or in one of its documents."""
        from lancedb.expr import col, lit

        table = await self._open(validate_collection(collection))
        if table is None:
            return 0
        where = None if document_id is None else (col("document_id") == lit(document_id)).to_sql()
        try:
            return await table.count_rows(where)
        except (OSError, RuntimeError, ValueError) as exc:
            raise StoreError(f"count in collection {collection!r} failed: {exc}") from exc

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
        """The `k` best passages: BM25 score, cosine similarity, or RRF score (hybrid)."""
        from lancedb.expr import col

        table = await self._open(validate_collection(collection))
        if table is None or k < 1 or (document_ids is not None and not document_ids):
            return []
        where = None if document_ids is None else col("document_id").isin(list(document_ids))
        try:
            if mode is SearchMode.BM25:
                return await self._keyword(table, text, k, where)
            if mode is SearchMode.VECTOR:
                return await self._nearest(table, vector, k, where)
            pool = k * self._candidate_factor
            keyword, nearest = await asyncio.gather(
                self._keyword(table, text, pool, where), self._nearest(table, vector, pool, where)
            )
        except (OSError, RuntimeError, ValueError) as exc:
            raise StoreError(f"search in collection {collection!r} failed: {exc}") from exc
        passages = {p.chunk_id: p for p in (*nearest, *keyword)}
        fused = reciprocal_rank_fusion([[p.chunk_id for p in keyword], [p.chunk_id for p in nearest]])
        return [with_score(passages[chunk_id], score) for chunk_id, score in fused[:k]]

    async def drop_collection(self, collection: str) -> None:
        """Drop the collection's table."""
        name = validate_collection(collection)
        async with self._lock:
            self._tables.pop(name, None)
            db = await self._connect()
            try:
                await db.drop_table(name, ignore_missing=True)
            except (OSError, RuntimeError, ValueError) as exc:
                raise StoreError(f"dropping collection {collection!r} failed: {exc}") from exc

    async def optimize(self) -> None:
        """Compact every table and fold newly added rows into its indexes now."""
        db = await self._connect()
        for name in (await db.list_tables()).tables:
            table = await self._open(name)
            if table is not None:
                await self._upkeep.run(name, table)

    async def wait_settled(self) -> None:
        """Return once the upkeep due after recent writes has run (tests)."""
        await self._upkeep.wait()

    async def close(self) -> None:
        """Drop pending upkeep and table handles, and close the connection."""
        await self._upkeep.cancel()
        self._tables.clear()
        if self._db is not None:
            self._db.close()  # type: ignore[no-untyped-call]
            self._db = None

    async def _keyword(self, table: AsyncTable, text: str, limit: int, where: Expr | None) -> list[Passage]:
        if not text.strip():
            return []
        query = table.query().nearest_to_text(text).select([*PASSAGE_COLUMNS, "_score"]).limit(limit)
        if where is not None:
            query = query.where(where)
        rows = await query.to_list(timeout=self._timeout)
        return [passage_of(row, float(row["_score"])) for row in rows]

    async def _nearest(
        self, table: AsyncTable, vector: Sequence[float], limit: int, where: Expr | None
    ) -> list[Passage]:
        if not vector:
            return []
        query = (
            table.query()
            .nearest_to(list(vector))
            .distance_type("cosine")
            .ef(self._vector_index_ef)  # HNSW search breadth; ignored while there is no index
            .select([*PASSAGE_COLUMNS, "_distance"])
            .limit(limit)
        )
        if where is not None:
            query = query.where(where)
        rows = await query.to_list(timeout=self._timeout)
        return [passage_of(row, 1.0 - float(row["_distance"])) for row in rows]

    async def _connect(self) -> AsyncConnection:
        if self._db is None:
            import lancedb

            # interval 0: every read checks for other processes' writes (an ingest
            # worker writes while retrieve workers read).
            self._db = await lancedb.connect_async(self._data_dir, read_consistency_interval=timedelta(0))
        return self._db

    async def _open(self, name: str) -> AsyncTable | None:
        """The collection's table, or None if nothing was ever stored in it."""
        if name in self._tables:
            return self._tables[name]
        async with self._lock:
            db = await self._connect()
            try:
                table = await db.open_table(name)
            except ValueError:  # LanceDB's "Table 'x' was not found"
                return None
            self._tables[name] = table
            self._upkeep.opened(name)
            return table

    async def _open_or_create(self, name: str, dimension: int) -> AsyncTable:
        """The collection's table, created with its FTS index if missing."""
        table = await self._open(name)
        if table is not None:
            return table
        async with self._lock:
            table = await self._create_table(await self._connect(), name, dimension)
            self._tables[name] = table
            return table

    async def _fit_vectors(self, name: str, table: AsyncTable, dimension: int) -> None:
        """Give an empty table's vector column `dimension` values, if it holds another length.

        A collection emptied after a change of embedding model takes the new model
        (`collection_models.py`), whose vectors may be of another length than the
        table was made for. The column is replaced in place (not the table dropped),
        so other processes' open handles see the new schema at their next read.
        A table that still holds chunks keeps its vectors: the write is refused.
        """
        try:
            current = (await table.schema()).field("vector").type.list_size
            if current == dimension:
                return
            held = await table.count_rows()
            if held == 0:
                _log.info("vector_length_changed", collection=name, was=current, now=dimension)
                await table.drop_columns(["vector"])
                await table.add_columns(table_schema(dimension).field("vector"))
                return
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise StoreError(f"could not change the vector length of collection {name!r}: {exc}") from exc
        raise StoreError(
            f"collection {name!r} holds {held} chunks with {current}-dimensional vectors, "
            f"not {dimension}: delete its documents before storing vectors of another model"
        )

    async def _create_table(self, db: AsyncConnection, name: str, dimension: int) -> AsyncTable:
        from lancedb.index import FTS

        try:
            table = await db.create_table(name, schema=table_schema(dimension), exist_ok=True)
            if not any(index.index_type == "FTS" for index in await table.list_indices()):
                await table.create_index("text", config=FTS(), name=FTS_INDEX)
        except (OSError, RuntimeError, ValueError) as exc:
            raise StoreError(f"could not create the table of collection {name!r}: {exc}") from exc
        return table
