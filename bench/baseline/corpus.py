"""The benchmark's documents, prepared once for both sides from the same pages.

`chunk_pages` parses and chunks the pages with the rag service's own
code (`services.rag.parsing` / `chunking`); `embed_corpus` embeds the
chunks with the real `embed` model on Triton. `store_directly` writes them into the rag
store of the system's data folder (used while the upload pipeline is not
available; `ingest_by_api` uploads through the gateway once it is), and
`baseline_index` gives the baseline the same chunks and vectors for its
in-process search (`index_from_store` reads them back from the rag store
after an ingestion through the API).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

from bench.baseline.documents import DocumentChunk, DocumentIndex
from bench.common import DatasetPage
from proto.documents import document_id_for
from services.inference.settings import InferenceSettings
from services.inference.triton_client import TritonModels
from services.rag.chunking import Chunk, chunk_document
from services.rag.parsing import ParseLimits, parse_document
from services.rag.settings import RagSettings
from services.rag.store.base import StoredChunk
from services.rag.store.lance import LanceStore

__all__ = [
    "Corpus",
    "baseline_index",
    "chunk_pages",
    "documents_api_exists",
    "embed_corpus",
    "index_from_store",
    "ingest_by_api",
    "store_directly",
]

EMBED_TEXTS_PER_CALL = 64  # texts per embed call while preparing
EMBED_CALLS_IN_FLIGHT = 4  # embed calls in flight while preparing
EMBED_TIMEOUT_S = 120.0  # one embed call
INGEST_TIMEOUT_S = 240.0  # all uploads ingested through the API
INGEST_POLL_S = 0.5  # interval between document status reads


@dataclass(frozen=True)
class Corpus:
    """Chunks of every document and each page's title (for the chat questions); vectors once embedded."""

    collection: str
    chunks: list[Chunk]
    titles: list[str]
    vectors: list[list[float]] = field(default_factory=list)


def chunk_pages(pages: list[DatasetPage], collection: str) -> Corpus:
    """Parse and chunk `pages` with the rag service's code and settings (no embeddings yet)."""
    settings = RagSettings()
    chunks: list[Chunk] = []
    titles: list[str] = []
    for page in pages:
        file_name = f"{page.name}.html"
        parsed = parse_document(
            page.html, file_name=file_name, content_type="text/html", limits=ParseLimits()
        )
        titles.append(parsed.title or page.name)
        document_id = document_id_for(collection, hashlib.sha256(page.html).hexdigest())
        chunks += chunk_document(
            parsed,
            document_id=document_id,
            file_name=file_name,
            max_tokens=settings.chunk_max_tokens,
            overlap_tokens=settings.chunk_overlap_tokens,
        )
    return Corpus(collection, chunks, titles)


async def embed_corpus(corpus: Corpus, triton_grpc_url: str) -> Corpus:
    """The corpus with its chunks embedded by Triton's `embed` model."""
    models = TritonModels(InferenceSettings(triton_grpc_url=triton_grpc_url))
    slots = asyncio.Semaphore(EMBED_CALLS_IN_FLIGHT)

    async def embed(texts: list[str]) -> list[list[float]]:
        async with slots:
            return await models.embed(texts, timeout_s=EMBED_TIMEOUT_S)

    try:
        texts = [chunk.text for chunk in corpus.chunks]
        groups = [texts[i : i + EMBED_TEXTS_PER_CALL] for i in range(0, len(texts), EMBED_TEXTS_PER_CALL)]
        vectors = [v for group in await asyncio.gather(*(embed(g) for g in groups)) for v in group]
    finally:
        await models.close()
    return Corpus(corpus.collection, corpus.chunks, corpus.titles, vectors)


async def store_directly(corpus: Corpus, rag_data_dir: Path) -> None:
    """Write the corpus into the LanceDB store that the rag service will open."""
    store = LanceStore(str(rag_data_dir))
    try:
        await store.upsert(
            [
                StoredChunk(
                    chunk_id=chunk.chunk_id,
                    document_id=chunk.document_id,
                    collection=corpus.collection,
                    file_name=chunk.file_name,
                    index=chunk.index,
                    text=chunk.text,
                    page=chunk.page,
                    heading_path=chunk.heading_path,
                    char_start=chunk.char_start,
                    char_end=chunk.char_end,
                    vector=vector,
                )
                for chunk, vector in zip(corpus.chunks, corpus.vectors, strict=True)
            ]
        )
        await store.optimize()  # fold every row into the full-text index, as a settled store has it
    finally:
        await store.close()


def baseline_index(corpus: Corpus) -> DocumentIndex:
    """The same chunks and vectors for the baseline's in-process search."""
    chunks = [DocumentChunk(c.file_name, c.index, c.text) for c in corpus.chunks]
    return DocumentIndex(chunks, np.asarray(corpus.vectors, dtype=np.float32))


def index_from_store(rag_data_dir: Path, collection: str) -> DocumentIndex:
    """The chunks and vectors the rag service stored (LanceDB), for the baseline's search."""
    import lancedb

    table = lancedb.connect(str(rag_data_dir)).open_table(collection)
    rows = table.to_arrow().select(["file_name", "index", "text", "vector"]).to_pylist()
    chunks = [DocumentChunk(row["file_name"], int(row["index"]), row["text"]) for row in rows]
    return DocumentIndex(chunks, np.asarray([row["vector"] for row in rows], dtype=np.float32))


def documents_api_exists() -> bool:
    """Whether the gateway serves `POST /v1/documents` (the upload pipeline) yet."""
    try:
        from services.gateway.app import create_app
        from services.gateway.settings import GatewaySettings

        app = create_app(GatewaySettings())
    except Exception:  # a gateway being rewritten: fall back to direct ingestion
        return False
    return "POST" in app.route_handler_method_map.get("/v1/documents", {})


async def ingest_by_api(
    session: aiohttp.ClientSession, gateway_url: str, pages: list[DatasetPage], collection: str
) -> tuple[int, str | None]:
    """Upload every page through the gateway and wait until each settles.

    Returns how many are ready, and why uploading failed (None when every
    upload was accepted, even if some are not ready at the deadline).
    """
    ids: list[str] = []
    for page in pages:
        form = aiohttp.FormData()
        form.add_field("collection", collection)
        form.add_field("file", page.html, filename=f"{page.name}.html", content_type="text/html")
        async with session.post(f"{gateway_url}/v1/documents", data=form) as response:
            if response.status >= 300:
                return 0, f"upload answered HTTP {response.status}: {(await response.text())[:200]}"
            ids.append(str((await response.json())["document_id"]))
    deadline = time.monotonic() + INGEST_TIMEOUT_S
    pending = set(ids)
    ready = 0
    while pending and time.monotonic() < deadline:
        for document_id in sorted(pending):
            async with session.get(f"{gateway_url}/v1/documents/{document_id}") as response:
                state = (await response.json()).get("state") if response.status == 200 else None
            if state in ("ready", "failed"):
                pending.discard(document_id)
                ready += state == "ready"
        if pending:
            await asyncio.sleep(INGEST_POLL_S)  # polling interval of a status probe
    return ready, None
