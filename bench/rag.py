"""rag: ingestion speed, retrieval latency through the bus, and known-item retrieval quality.

Starts NATS, Triton, inference and rag (`deploy.cluster.LocalSystem`), then:

1. ingests the 91 pages of `article-extraction` as HTML documents through the
   real pipeline (object store, JetStream, parse pool, embeddings over the
   bus, LanceDB) and reports chunks stored per second, first submit to last
   `ready`;
2. known-item quality: for each page the query is the first sentence of its
   ground-truth body (at least 8 words, so that "BUFFALO, N.Y." is not a
   sentence) with stop words dropped, the relevant chunks are all the
   page's chunks; MRR@10 and recall@5 (a relevant chunk in the top 5) per
   retrieve mode, plus fusion variants computed here from the BM25 and vector
   rankings (depth 50) so that fusion choices are compared on equal footing;
   the same measures again with each page's title as the query
   (`quality_title_queries`: a headline says what the page is about in other
   words than its text, where the two methods differ; supplementary, the
   issue's target is on the first-sentence task);
3. fills the collection up to 10,000 chunks with synthetic filler written to
   the store directly (60 words drawn, seeded, from the word stream of the
   Python standard library's docstrings; random unit vectors) and measures
   `retrieve` (hybrid, k=5) through the bus at 16 concurrent queries (each
   one distinct: every sentence of the pages, reworded like the known-item
   queries, so no cache can flatter the figure), next to
   its two parts measured alone at the same concurrency: `inference.embed` of
   one query (what hybrid adds to BM25) and BM25-only retrieve (bus + store);
4. at 10,000 chunks the collection has its HNSW vector index: recall@10 of
   vector retrieve through the bus against an exact scan of the same vectors
   (numpy over every stored row), for the known-item queries.
"""

from __future__ import annotations

import ast
import asyncio
import itertools
import random
import re
import statistics
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from bench.baseline.generator import load_model_module
from bench.common import process_tree_cpu_s
from bench.extraction_score import default_dataset_dir, load_dataset
from deploy.cluster import LocalSystem
from htmltext.extract import extract_main_text
from proto.common import ErrorReply, decode, encode
from proto.context import RetrieveReply, RetrieveRequest
from proto.documents import DocumentState
from proto.inference import EmbedReply, EmbedRequest
from proto.subjects import EMBED, RETRIEVE
from services.gateway.documents import Upload, submit_upload
from services.rag.documents import open_document_buckets, wait_for_state
from services.rag.store import StoredChunk
from services.rag.store.fusion import reciprocal_rank_fusion
from services.rag.store.lance import LanceStore

SUBMIT_TIMEOUT_S = 10.0  # one upload's object, state and ingest message
__all__ = ["run"]

COLLECTION = "bench"
TOTAL_CHUNKS = 10_000
CONCURRENCY = 16
LATENCY_QUERIES = 320
SUBMIT_CONCURRENCY = 8
QUALITY_CONCURRENCY = 8
DEPTH = 50  # candidates per method for the fusion experiments (retrieve_k_max)
SETTLE_TIMEOUT_S = 240.0
DIMENSIONS = 384
FILLER_WORDS = 60
SEED = 20261124
TARGET_P50_MS = 25.0
NOTES_HYBRID_P50_MS = 16.0  # notes/libraries-measured.md: LanceDB hybrid in-process, 20k rows
# English function words: the generate model's list without the words it adds for questions
# ("what does the page say ..."), which a page's own sentence keeps.
_QUESTION_WORDS = {"page", "pages", "say", "says", "said", "tell", "told"}
STOP_WORDS: frozenset[str] = load_model_module("lexical_rank").STOP_WORDS - _QUESTION_WORDS
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"\u201d\u2019)]*\s+(?=[\"\u201c\u2018(]?[A-Z0-9])")
MIN_SENTENCE_WORDS = 8
_WORD = re.compile(r"\w+(?:[\u2019'.-]\w+)*")


def first_sentence(body: str) -> str:
    """The body's first sentence; one under MIN_SENTENCE_WORDS words runs on to the next end.

    The run-on keeps a dateline or an abbreviation ("BUFFALO, N.Y. -- ...") from
    being taken for a whole sentence.
    """
    text = body.strip()
    for end in _SENTENCE_END.finditer(text):
        if len(text[: end.start()].split()) >= MIN_SENTENCE_WORDS:
            return text[: end.start()]
    return text


def known_item_query(body: str) -> str:
    """The first sentence of a page's body, reworded by dropping stop words."""
    words = _WORD.findall(first_sentence(body))
    return " ".join(word for word in words if word.lower() not in STOP_WORDS)


def latency_queries(bodies: Sequence[str], count: int) -> list[str]:
    """`count` distinct queries made like the known-item ones from every sentence, pages interleaved.

    Distinct, so that no cache anywhere on the path can make a repeated query look fast.
    """
    per_page = [
        [
            " ".join(w for w in _WORD.findall(sentence) if w.lower() not in STOP_WORDS)
            for sentence in _SENTENCE_END.split(body.strip())
            if len(sentence.split()) >= MIN_SENTENCE_WORDS
        ]
        for body in bodies
    ]
    queries: list[str] = []
    seen: set[str] = set()
    for row in itertools.zip_longest(*per_page):
        for query in row:
            if query and query not in seen:
                seen.add(query)
                queries.append(query)
    if len(queries) < count:
        raise RuntimeError(f"the dataset gives {len(queries)} distinct queries, {count} are needed")
    return queries[:count]


def _first_rank(documents: list[str], wanted: str) -> int | None:
    """Rank (1-10) of the first chunk of the wanted document, None if not in the top 10."""
    return next((i for i, doc in enumerate(documents[:10], start=1) if doc == wanted), None)


def _metrics(ranked: list[list[str]], relevant: list[str]) -> dict[str, float]:
    reciprocal, hits = 0.0, 0
    for documents, wanted in zip(ranked, relevant, strict=True):
        rank = _first_rank(documents, wanted)
        reciprocal += 1.0 / rank if rank else 0.0
        hits += wanted in documents[:5]
    return {"mrr_at_10": round(reciprocal / len(relevant), 4), "recall_at_5": round(hits / len(relevant), 4)}


async def _retrieve(client: Client, query: str, mode: str, k: int) -> RetrieveReply:
    request = RetrieveRequest(query=query, collection=COLLECTION, k=k, mode=mode, timeout_ms=10_000)
    reply: RetrieveReply | ErrorReply = decode(
        (await client.request(RETRIEVE, encode(request), timeout=15)).data, RetrieveReply | ErrorReply
    )
    if isinstance(reply, ErrorReply):
        raise RuntimeError(f"retrieve failed: {reply.detail}")
    if reply.degraded:  # a hybrid figure must never be BM25's in disguise
        raise RuntimeError(f"retrieve degraded: {reply.degraded}")
    return reply


async def _ingest(client: Client, pages: dict[str, bytes]) -> tuple[dict[str, str], dict[str, Any]]:
    js = client.jetstream()
    kv, objects = await open_document_buckets(js)
    slots = asyncio.Semaphore(SUBMIT_CONCURRENCY)

    async def submit(key: str) -> str:
        async with slots:
            html = pages[key]
            upload = Upload(
                data=html, file_name=f"{key}.html", content_type="text/html", collection=COLLECTION
            )
            status, _ = await submit_upload(js, kv, objects, upload, timeout_s=SUBMIT_TIMEOUT_S)
            return status.document_id

    started = time.perf_counter()
    ids = dict(zip(pages, await asyncio.gather(*(submit(key) for key in pages)), strict=True))
    settled = await asyncio.gather(
        *(wait_for_state(kv, doc, timeout_s=SETTLE_TIMEOUT_S) for doc in set(ids.values()))
    )
    seconds = time.perf_counter() - started
    failed = [s.reason for s in settled if s.state is not DocumentState.READY]
    chunks = sum(s.chunks for s in settled)
    return ids, {
        "ingest_documents": len(settled),
        "ingest_failed": len(failed),
        "ingest_chunks": chunks,
        "ingest_seconds": round(seconds, 2),
        "ingest_chunks_per_s": round(chunks / seconds, 1),
    }


Scored = list[tuple[str, float]]  # (chunk key, score), best first


def _rrf(bm25: Scored, vector: Scored, k: int) -> list[str]:
    return [key for key, _ in reciprocal_rank_fusion([[c for c, _ in bm25], [c for c, _ in vector]], k=k)]


def _score_fusion(bm25: Scored, vector: Scored, normalise: str) -> list[str]:
    """Sum of per-list normalised scores (a chunk missing from a list gets 0 from it)."""
    fused: dict[str, float] = {}
    for ranking in (bm25, vector):
        scores = [score for _, score in ranking]
        if not scores:
            continue
        if normalise == "minmax":  # relative score fusion (Weaviate's default)
            low, span = min(scores), (max(scores) - min(scores)) or 1.0
        else:  # distribution-based (Qdrant's DBSF): mean +- 3 standard deviations -> 0..1
            mean, deviation = statistics.fmean(scores), statistics.pstdev(scores) or 1.0
            low, span = mean - 3 * deviation, 6 * deviation
        for key, score in ranking:
            fused[key] = fused.get(key, 0.0) + (score - low) / span
    return [key for key, _ in sorted(fused.items(), key=lambda pair: -pair[1])]


FUSIONS: dict[str, Callable[[Scored, Scored], list[str]]] = {
    "rrf_k60": lambda b, v: _rrf(b, v, 60),
    "rrf_k10": lambda b, v: _rrf(b, v, 10),
    "minmax_sum": lambda b, v: _score_fusion(b, v, "minmax"),
    "dbsf_sum": lambda b, v: _score_fusion(b, v, "dbsf"),
}


async def _quality(client: Client, queries: list[str], relevant: list[str]) -> dict[str, Any]:
    """Per-mode metrics through the bus, and fusion variants over the same depth-50 rankings."""
    slots = asyncio.Semaphore(QUALITY_CONCURRENCY)

    async def ask(query: str, mode: str, k: int) -> Scored:
        async with slots:
            reply = await _retrieve(client, query, mode, k)
        return [(f"{p.document_id}:{p.chunk_index}", p.score) for p in reply.passages]

    ranked: dict[str, list[Scored]] = {}
    for mode, k in (("bm25", DEPTH), ("vector", DEPTH), ("hybrid", 10)):
        ranked[mode] = list(await asyncio.gather(*(ask(query, mode, k) for query in queries)))
    bm25, vector = ranked["bm25"], ranked["vector"]

    def documents(rankings: Sequence[Sequence[str]]) -> list[list[str]]:
        return [[key.split(":")[0] for key in ranking] for ranking in rankings]

    def keys(rankings: list[Scored]) -> list[list[str]]:
        return [[key for key, _ in ranking] for ranking in rankings]

    by_mode = {mode: documents(keys(ranked[mode])) for mode in ranked}
    results: dict[str, Any] = {mode: _metrics(by_mode[mode], relevant) for mode in ranked}
    # Every query some method does not rank first: where the methods differ, and what no fusion can fix.
    results["not_first"] = [
        {"query": query, **{mode: _first_rank(by_mode[mode][i], relevant[i]) for mode in ranked}}
        for i, query in enumerate(queries)
        if any(_first_rank(by_mode[mode][i], relevant[i]) != 1 for mode in ranked)
    ]
    pairs = list(zip(bm25, vector, strict=True))
    results["fusion_experiments"] = {
        f"{name}_depth{DEPTH}": _metrics(documents([fuse(b, v) for b, v in pairs]), relevant)
        for name, fuse in FUSIONS.items()
    }
    return results


def _filler_words(limit: int) -> list[str]:
    """The word stream of the standard library's docstrings, in file order (deterministic)."""
    words: list[str] = []
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.glob("*.py")):
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                words += _WORD.findall(ast.get_docstring(node) or "")
        if len(words) >= limit:
            break
    return words


async def _fill(data_dir: str, count: int) -> None:
    """Write `count` filler chunks (random words, random unit vectors) to the collection."""
    rng = random.Random(SEED)
    words = _filler_words(100_000)
    store = LanceStore(data_dir)
    try:
        batch: list[StoredChunk] = []
        for index in range(count):
            vector = [rng.gauss(0.0, 1.0) for _ in range(DIMENSIONS)]
            norm = sum(x * x for x in vector) ** 0.5
            text = " ".join(rng.choices(words, k=FILLER_WORDS))
            batch.append(
                StoredChunk(
                    chunk_id=f"filler-{index}",
                    document_id=f"filler-{index // 8}",
                    collection=COLLECTION,
                    file_name="filler.txt",
                    index=index % 8,
                    text=text,
                    page=None,
                    heading_path=(),
                    char_start=0,
                    char_end=len(text),
                    vector=[x / norm for x in vector],
                )
            )
            if len(batch) == 2000 or index == count - 1:
                await store.upsert(batch)
                batch = []
        await store.optimize()  # fold the filler into the full-text index, as a running service would
    finally:
        await store.close()


async def _embed(client: Client, texts: list[str]) -> list[list[float]]:
    request = EmbedRequest(texts=texts, timeout_ms=10_000)
    reply: EmbedReply | ErrorReply = decode(
        (await client.request(EMBED, encode(request), timeout=15)).data, EmbedReply | ErrorReply
    )
    if isinstance(reply, ErrorReply):
        raise RuntimeError(f"embed failed: {reply.detail}")
    return reply.vectors


async def _latency(
    client: Client, queries: list[str], pids: dict[str, int], mode: str = "hybrid"
) -> dict[str, Any]:
    """Retrieve (k=5) latencies at CONCURRENCY requests in flight ("embed": the query embedding alone).

    `queries` holds CONCURRENCY warm-up queries, then LATENCY_QUERIES measured ones, all distinct.
    Also the CPU each process (`pids`, and this client) spent per measured request.
    """
    latencies: list[float] = []
    pending = iter(range(CONCURRENCY, len(queries)))

    async def call(query: str) -> object:
        return await (_embed(client, [query]) if mode == "embed" else _retrieve(client, query, mode, 5))

    async def worker() -> None:
        for number in pending:
            started = time.perf_counter()
            await call(queries[number])
            latencies.append((time.perf_counter() - started) * 1000)

    await call(queries[0])  # warm-up: the first query after the fill loads the new indexes
    await asyncio.gather(*(call(q) for q in queries[1:CONCURRENCY]))
    cpu_before = {name: process_tree_cpu_s(pid) for name, pid in pids.items()}
    client_before = time.process_time()  # this process alone: the servers are its children
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    seconds = time.perf_counter() - started
    cpu = {name: process_tree_cpu_s(pid) - cpu_before[name] for name, pid in pids.items()}
    cpu["bench_client"] = time.process_time() - client_before
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "retrieve_p50_ms": round(statistics.median(latencies), 2),
        "retrieve_p99_ms": round(cuts[98], 2),
        "retrieve_per_s": round(len(latencies) / seconds, 1),
        "retrieve_concurrency": CONCURRENCY,
        "cpu_ms_per_request": {name: round(s * 1000 / len(latencies), 2) for name, s in cpu.items()},
    }


async def _bench() -> dict[str, Any]:
    pages, truths = load_dataset(default_dataset_dir())
    with tempfile.TemporaryDirectory(prefix="bench-rag-") as tmp:
        async with LocalSystem.start(Path(tmp), services=("inference", "rag")) as system:
            client = await nats.connect(system.nats.url)
            try:
                _stage("ingesting the pages")
                ids, results = await _ingest(client, pages)
                keys = [key for key in pages if known_item_query(truths[key])]
                queries = [known_item_query(truths[key]) for key in keys]
                _stage(f"ingested {results['ingest_chunks']} chunks; measuring quality")
                results["quality"] = await _quality(client, queries, [ids[key] for key in keys])
                results["quality_queries"] = len(queries)
                titles = {key: extract_main_text(pages[key]).title for key in keys}
                titled = [key for key in keys if titles[key]]
                results["quality_title_queries"] = await _quality(
                    client, [titles[key] or "" for key in titled], [ids[key] for key in titled]
                )
                filler = TOTAL_CHUNKS - int(results["ingest_chunks"])
                _stage(f"writing {filler} filler chunks")
                await _fill(system.env["RAG_DATA_DIR"], filler)
                _stage("measuring retrieve latency")
                results["filler_chunks"] = filler
                results["stored_chunks"] = TOTAL_CHUNKS
                per_run = CONCURRENCY + LATENCY_QUERIES
                fresh = latency_queries(list(truths.values()), 3 * per_run)  # one slice per run
                hybrid = await _latency(client, fresh[:per_run], system.pids())
                results["retrieve_cpu_ms"] = {"hybrid": hybrid.pop("cpu_ms_per_request")}
                results.update(hybrid)
                for run, part in enumerate(("bm25", "embed"), start=1):  # bus + store; embedding alone
                    queries_of_run = fresh[run * per_run : (run + 1) * per_run]
                    alone = await _latency(client, queries_of_run, system.pids(), part)
                    results[f"retrieve_{part}_p50_ms"] = alone["retrieve_p50_ms"]
                    results[f"retrieve_{part}_p99_ms"] = alone["retrieve_p99_ms"]
                    results["retrieve_cpu_ms"][part] = alone["cpu_ms_per_request"]
                _stage("checking the vector index against an exact scan")
                results["vector_index_recall_at_10"] = await _index_recall(
                    client, system.env["RAG_DATA_DIR"], queries
                )
            finally:
                await client.close()
    return results


async def _index_recall(client: Client, data_dir: str, queries: list[str]) -> float:
    """Mean overlap of vector retrieve's top 10 (through the index) with an exact numpy scan's."""
    import lancedb
    import numpy as np

    db = await lancedb.connect_async(data_dir)
    stored = await db.open_table(COLLECTION)
    table = await stored.query().select(["document_id", "index", "vector"]).to_arrow()
    columns = zip(table.column("document_id").to_pylist(), table.column("index").to_pylist(), strict=True)
    ids = [f"{document}:{index}" for document, index in columns]
    matrix = np.asarray(table.column("vector").to_pylist(), dtype=np.float32)
    vectors = np.asarray(await _embed(client, queries), dtype=np.float32)
    overlaps = []
    for query, vector in zip(queries, vectors, strict=True):
        exact = {ids[i] for i in np.argsort(-(matrix @ vector))[:10]}
        found = (await _retrieve(client, query, "vector", 10)).passages
        overlaps.append(len(exact & {f"{p.document_id}:{p.chunk_index}" for p in found}) / 10)
    return round(statistics.fmean(overlaps), 4)


def _stage(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", flush=True)


def _print(results: dict[str, Any]) -> None:
    quality = results["quality"]
    print(
        f"ingest: {results['ingest_documents']} documents, {results['ingest_chunks']} chunks "
        f"in {results['ingest_seconds']} s = {results['ingest_chunks_per_s']} chunks/s"
    )
    print(f"{'method':<20} {'MRR@10':>8} {'recall@5':>9}")
    for name, figures in [
        *((m, quality[m]) for m in ("bm25", "vector", "hybrid")),
        *quality["fusion_experiments"].items(),
    ]:
        print(f"{name:<20} {figures['mrr_at_10']:8.3f} {figures['recall_at_5']:9.3f}")
    titled = results["quality_title_queries"]
    print("the same with each page's title as the query:")
    for name in ("bm25", "vector", "hybrid"):
        print(f"{name:<20} {titled[name]['mrr_at_10']:8.3f} {titled[name]['recall_at_5']:9.3f}")
    print("queries some method does not rank first (rank of the page's best chunk; None: not in top 10):")
    for miss in quality["not_first"]:
        ranks = ", ".join(f"{mode} {miss[mode]}" for mode in ("bm25", "vector", "hybrid"))
        print(f"  {ranks}: {miss['query'][:70]}")
    beats = all(quality["hybrid"]["mrr_at_10"] > quality[m]["mrr_at_10"] for m in ("bm25", "vector"))
    print(f"target: hybrid beats both on MRR@10 -> {'met' if beats else 'NOT met'}")
    print(
        f"retrieve through the bus, {results['stored_chunks']} chunks, {CONCURRENCY} in flight: "
        f"p50 {results['retrieve_p50_ms']} ms, p99 {results['retrieve_p99_ms']} ms "
        f"(target p50 <= {TARGET_P50_MS:g} ms; baseline: LanceDB hybrid alone in-process, "
        f"20k rows, p50 {NOTES_HYBRID_P50_MS:g} ms)"
    )
    print(
        f"  its parts alone, {CONCURRENCY} in flight: bm25-only retrieve (bus + store, no embedding) "
        f"p50 {results['retrieve_bm25_p50_ms']} ms; inference.embed of the query "
        f"p50 {results['retrieve_embed_p50_ms']} ms"
    )
    for part, cpu in results["retrieve_cpu_ms"].items():
        total = round(sum(cpu.values()), 1)
        print(f"  CPU ms per request, {part}: {total} ({', '.join(f'{k} {v}' for k, v in cpu.items())})")
    print(f"vector index recall@10 against an exact scan: {results['vector_index_recall_at_10']}")


def run() -> dict[str, Any]:
    """Run the rag benchmark; print the table and return the figures."""
    results = asyncio.run(_bench())
    _print(results)
    return results
