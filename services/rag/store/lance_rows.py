"""How chunks are laid out in a LanceDB table, and read back as passages.

One row per chunk: its place in the document (ids, file, page or heading path,
character offsets), its text (BM25 index) and its unit vector (vector index).
"""

from __future__ import annotations

from typing import Any

import msgspec
import pyarrow as pa

from services.rag.store.base import Passage, StoredChunk

__all__ = ["PASSAGE_COLUMNS", "chunk_row", "passage_of", "table_schema", "with_score"]

PASSAGE_COLUMNS = [
    "chunk_id",
    "document_id",
    "file_name",
    "index",
    "text",
    "page",
    "heading_path",
    "char_start",
    "char_end",
]


def table_schema(dimension: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("chunk_id", pa.string(), nullable=False),
            pa.field("document_id", pa.string(), nullable=False),
            pa.field("file_name", pa.string()),
            pa.field("index", pa.int32()),
            pa.field("text", pa.string()),
            pa.field("page", pa.int32()),
            pa.field("heading_path", pa.list_(pa.string())),
            pa.field("char_start", pa.int64()),
            pa.field("char_end", pa.int64()),
            pa.field("vector", pa.list_(pa.float32(), dimension)),
        ]
    )


def chunk_row(chunk: StoredChunk) -> dict[str, Any]:
    return {
        "chunk_id": chunk.chunk_id,
        "document_id": chunk.document_id,
        "file_name": chunk.file_name,
        "index": chunk.index,
        "text": chunk.text,
        "page": chunk.page,
        "heading_path": list(chunk.heading_path),
        "char_start": chunk.char_start,
        "char_end": chunk.char_end,
        "vector": chunk.vector,
    }


def passage_of(row: dict[str, Any], score: float) -> Passage:
    return Passage(
        chunk_id=row["chunk_id"],
        document_id=row["document_id"],
        file_name=row["file_name"],
        index=row["index"],
        text=row["text"],
        page=row["page"],
        heading_path=tuple(row["heading_path"] or ()),
        char_start=row["char_start"],
        char_end=row["char_end"],
        score=score,
    )


def with_score(passage: Passage, score: float) -> Passage:
    return msgspec.structs.replace(passage, score=score)
