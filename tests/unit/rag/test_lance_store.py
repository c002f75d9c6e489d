"""LanceDB specifics beyond the shared conformance suite: other processes, the FTS index."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.rag.store import SearchMode
from services.rag.store.lance import LanceStore
from tests.contract.store_suite import TOPICS, embed, make_chunks

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LanceStore]:
    store = LanceStore(str(tmp_path))
    yield store
    await store.close()


async def _bm25(store: LanceStore, collection: str, text: str) -> list[str]:
    found = await store.search(collection, text=text, vector=embed(text), k=10, mode=SearchMode.BM25)
    return [p.chunk_id for p in found]


async def test_rows_added_after_the_fts_index_are_found(store: LanceStore) -> None:
    await store.upsert(make_chunks("c", "first", TOPICS[:2]))  # creates the table and its index
    await store.upsert(make_chunks("c", "later", ["Narwhals have a single long spiral tusk."]))
    assert await _bm25(store, "c", "narwhals tusk") == ["later:0"]
    await store.optimize()
    assert await _bm25(store, "c", "narwhals tusk") == ["later:0"]
    assert await _bm25(store, "c", "lighthouse keeper") == ["first:0"]


async def test_writes_of_another_process_are_seen(store: LanceStore, tmp_path: Path) -> None:
    await store.upsert(make_chunks("shared", "mine", TOPICS[:1]))
    assert await _bm25(store, "shared", "narwhals") == []  # the handle is open and cached now
    writer = textwrap.dedent(
        f"""
        import asyncio
        from services.rag.store.lance import LanceStore
        from tests.contract.store_suite import make_chunks

        async def main():
            store = LanceStore({str(tmp_path)!r})
            await store.upsert(make_chunks("shared", "theirs", ["Narwhals have a single long spiral tusk."]))
            await store.upsert(make_chunks("other", "new", ["A table created by another process."]))
            await store.close()

        asyncio.run(main())
        """
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", writer, cwd=REPO_ROOT)
    assert await asyncio.wait_for(process.wait(), timeout=120) == 0
    assert await _bm25(store, "shared", "narwhals") == ["theirs:0"]
    assert await store.count("shared") == 2
    assert await store.count("other") == 1
    assert await store.delete_document("shared", "theirs") == 1


async def test_vector_dimension_is_fixed_per_collection(store: LanceStore) -> None:
    from services.rag.errors import StoreError

    chunk = make_chunks("c", "d", ["text"])[0]
    await store.upsert([chunk])
    import msgspec

    with pytest.raises(StoreError):
        await store.upsert([msgspec.structs.replace(chunk, chunk_id="other", vector=[1.0, 0.0])])
    with pytest.raises(StoreError):
        await store.search("c", text="text", vector=[1.0, 0.0], k=1, mode=SearchMode.VECTOR)


async def test_an_emptied_table_takes_vectors_of_another_length(store: LanceStore, tmp_path: Path) -> None:
    import msgspec

    old = make_chunks("c", "old", TOPICS[:2])
    await store.upsert(old)
    reader = LanceStore(str(tmp_path))  # another replica, its table handle open on the old schema
    try:
        assert await reader.count("c") == 2
        assert await store.delete_document("c", "old") == 2
        new = msgspec.structs.replace(old[0], chunk_id="new:0", document_id="new", vector=[0.6, 0.8])
        await store.upsert([new])
        for replica in (store, reader):
            found = await replica.search("c", text="", vector=[0.6, 0.8], k=5, mode=SearchMode.VECTOR)
            assert [p.chunk_id for p in found] == ["new:0"]
            assert await _bm25(replica, "c", old[0].text) == ["new:0"]  # the text index still works
    finally:
        await reader.close()


async def test_new_rows_are_folded_into_the_fts_index(tmp_path: Path) -> None:
    import lancedb

    store = LanceStore(str(tmp_path), optimize_after_rows=3, settle_after_s=3600)  # the threshold alone
    await store.upsert(make_chunks("c", "a", TOPICS[:2]))
    db = await lancedb.connect_async(str(tmp_path))
    table = await db.open_table("c")
    stats = await table.index_stats("text_idx")
    assert stats is not None
    assert stats.num_unindexed_rows == 2  # below the threshold: scanned, not indexed yet
    await store.upsert(make_chunks("c", "b", TOPICS[2:4]))
    await table.checkout_latest()  # type: ignore[no-untyped-call]
    stats = await table.index_stats("text_idx")
    assert stats is not None
    assert (stats.num_indexed_rows, stats.num_unindexed_rows) == (4, 0)
    assert await _bm25(store, "c", "glaciers") == ["b:0"]
    await store.close()


async def test_a_collection_settles_once_its_writes_go_quiet(tmp_path: Path) -> None:
    import lancedb

    store = LanceStore(str(tmp_path), optimize_after_rows=1000, settle_after_s=0.05)
    for index, topic in enumerate(TOPICS[:4]):  # four uploads: four fragments, none indexed
        await store.upsert(make_chunks("c", f"d{index}", [topic]))
    assert await store.delete_document("c", "d0") == 1
    await store.wait_settled()  # 4 rows are far below the row threshold: only the quiet timer folds them in
    table = await (await lancedb.connect_async(str(tmp_path))).open_table("c")
    stats = await table.index_stats("text_idx")
    assert stats is not None and (stats.num_indexed_rows, stats.num_unindexed_rows) == (3, 0)
    assert (await table.stats())["fragment_stats"]["num_fragments"] == 1  # compacted, the deletion applied
    assert await _bm25(store, "c", "glaciers") == ["d2:0"]
    await store.close()


async def test_rows_an_earlier_process_left_unindexed_are_settled_on_first_open(tmp_path: Path) -> None:
    import lancedb

    writer = LanceStore(str(tmp_path), optimize_after_rows=1000, settle_after_s=3600)
    await writer.upsert(make_chunks("c", "a", TOPICS[:3]))
    await writer.close()  # stopped before its upkeep was due: the rows stay unindexed
    table = await (await lancedb.connect_async(str(tmp_path))).open_table("c")
    stats = await table.index_stats("text_idx")
    assert stats is not None and stats.num_unindexed_rows == 3

    reader = LanceStore(str(tmp_path), settle_after_s=0.01)
    assert len(await _bm25(reader, "c", "glaciers")) == 1  # the first use opens the table
    await reader.wait_settled()
    await table.checkout_latest()  # type: ignore[no-untyped-call]
    stats = await table.index_stats("text_idx")
    assert stats is not None and (stats.num_indexed_rows, stats.num_unindexed_rows) == (3, 0)
    await reader.close()

    settled_version = await table.version()
    another = LanceStore(str(tmp_path), settle_after_s=0.01)
    await _bm25(another, "c", "glaciers")
    await another.wait_settled()
    await table.checkout_latest()  # type: ignore[no-untyped-call]
    assert await table.version() == settled_version  # nothing to settle: nothing written
    await another.close()


async def test_the_vector_index_is_built_at_its_size_and_later_rows_are_still_found(tmp_path: Path) -> None:
    import random

    from tests.contract.store_suite import DIMENSION

    rng = random.Random(7)

    def random_unit() -> list[float]:
        vector = [rng.gauss(0.0, 1.0) for _ in range(DIMENSION)]
        norm = sum(x * x for x in vector) ** 0.5
        return [x / norm for x in vector]

    async def nearest(vector: list[float], k: int = 3) -> list[str]:
        found = await store.search("c", text="", vector=vector, k=k, mode=SearchMode.VECTOR)
        return [p.chunk_id for p in found]

    async def has_vector_index() -> bool:
        table = await store._open("c")
        assert table is not None
        return any(index.name == "vector_idx" for index in await table.list_indices())

    store = LanceStore(str(tmp_path), vector_index_min_rows=300)
    first = [random_unit() for _ in range(299)]
    await store.upsert(make_chunks("c", "a", [f"row {i}" for i in range(299)], first))
    assert not await has_vector_index()  # below the threshold: exact search
    assert (await nearest(first[17]))[0] == "a:17"
    second = [random_unit() for _ in range(10)]
    await store.upsert(make_chunks("c", "b", [f"more {i}" for i in range(10)], second))
    assert await has_vector_index()
    # Every stored vector finds itself first through the index (random vectors: a hard case).
    assert [(await nearest(v, 1))[0] for v in first[:50]] == [f"a:{i}" for i in range(50)]
    only_b = await store.search(
        "c", text="", vector=first[0], k=20, mode=SearchMode.VECTOR, document_ids=["b"]
    )
    assert sorted(p.chunk_id for p in only_b) == sorted(
        f"b:{i}" for i in range(10)
    )  # a filter through the index
    later = random_unit()
    await store.upsert(make_chunks("c", "late", ["after the index"], [later]))
    assert (await nearest(later))[0] == "late:0"  # not in the index yet: scanned exactly
    assert await store.delete_document("c", "a") == 299
    assert all(not chunk.startswith("a:") for chunk in await nearest(first[17], 10))
    await store.close()
