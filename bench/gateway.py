"""`just bench gateway`: whole chats through the system beside the seed chapter's one-process baseline.

Both sides get the same chats, models and data: every chat asks about one
dataset page served by a local aiohttp server (a distinct URL per chat, so
no cache can answer it) and retrieves from the dataset's documents. Our
side runs NATS, Triton and the four services (`deploy.cluster`); the
baseline is `bench.baseline` (FastAPI, everything in one process). They run
one after the other, never at the same time, on the same 2 cores.

The CPU stand-in generator streams its answer at a model's pace (10 ms a
chunk, `chunk_delay_ms`), on both sides: in ours Triton overlaps the streams
of concurrent chats (as continuous batching does on a GPU); in the baseline
the seed's synchronous `generate_text` call blocks its event loop for that
time. The baseline runs twice: paced (`baseline`, the comparison the targets
use) and unpaced (`baseline_unpaced`: its model costs CPU only, no decoding
time; our side still streams at the pace), so the CPU work alone is compared
too.

Figures: `chat_*_c16` (16 chats in flight for a bounded time, after a
warm-up) and `slow_pages_wall_s` (100 chats at once, each citing a
different page the server answers after 1 s). `profile` says where our
side's CPU goes (CPU seconds per chat of each process tree), how many rows
the `embed` model's dynamic batcher put in one execution, and how long the
context steps take alone.

The dataset has 91 pages, so 91 documents are ingested (not 100). Ingesting
them through the upload API takes about two minutes of embedding here, so
the chunk vectors of the first API ingestion are kept in `.state/bench/`
(keyed by a hash of the chunks' texts); later runs write the same chunks and
vectors straight into the rag store (`ingest` in the results says which).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import nats as nats_client
import numpy as np

from bench.baseline.corpus import (
    Corpus,
    baseline_index,
    chunk_pages,
    documents_api_exists,
    embed_corpus,
    index_from_store,
    ingest_by_api,
    store_directly,
)
from bench.baseline.documents import DocumentIndex
from bench.baseline.generator import EMBED_MODEL_DIR, EMBED_PRECISION, load_model_module
from bench.common import PageServer, dataset_pages, percentile, process_tree_cpu_s, run_load
from deploy.cluster import LocalSystem, NatsServer, free_port, wait_for_port
from deploy.triton.local import LocalTriton, TritonOptions
from proto.common import encode
from proto.context import RetrieveRequest, ScrapeRequest
from proto.inference import EmbedRequest
from proto.subjects import EMBED, RETRIEVE, SCRAPE

__all__ = ["run"]

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = 100  # documents ingested (the dataset has fewer: all of them are used)
COLLECTION = "default"
CONCURRENCY = 16  # chats in flight in the throughput run
WARMUP_CHATS = 16  # chats sent before measuring (loads models, pools, tables)
MAX_CHATS = 600  # upper bound of chats in the throughput run
MAX_DURATION_S = 15.0  # no new chat starts after this in the throughput run
SLOW_CHATS = 100  # chats at once in the slow-pages run
SLOW_PAGE_DELAY_S = 1.0  # how long the slow site takes to answer
CHAT_TIMEOUT_S = 60.0  # one chat, client side
SLOW_RUN_TIMEOUT_S = 30.0  # the slow-pages run stops waiting then (unfinished chats are counted)
BASELINE_START_TIMEOUT_S = 120.0  # the baseline loads its model and index
# All benchmark "sites" are one loopback host: lift the scraper's per-host politeness limit,
# and let one scraper process take all 100 slow chats at once.
SYSTEM_ENV = {
    "SCRAPER_MAX_CONCURRENCY": "128",
    "SCRAPER_PER_HOST_CONCURRENCY": "128",
    "SCRAPER_MAX_CONCURRENT_REQUESTS": "128",
}

PROFILE_REPEATS = 7  # sequential calls per context step in the profile
PROFILE_TIMEOUT_S = 10.0  # one call of the profile
METRICS_TIMEOUT_S = 5.0  # one read of Triton's Prometheus metrics
VECTOR_CACHE_DIR = ROOT / ".state" / "bench"  # chunk vectors of an earlier ingestion (git-ignored)


def run() -> dict[str, Any]:
    """Run both sides and return the results (the dispatcher writes bench/results/gateway.json)."""
    results = asyncio.run(_run())
    _print_table(results)
    return results


async def _run() -> dict[str, Any]:
    pages = dataset_pages(limit=DOCUMENTS)
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        data_dir = Path(tmp)
        nats = NatsServer(data_dir / "nats")
        nats.start()
        triton = LocalTriton(
            TritonOptions(
                workdir=data_dir / "triton",
                grpc_port=free_port(),
                http_port=free_port(),
                metrics_port=free_port(),
            )
        )
        try:
            triton.start()
            await asyncio.to_thread(triton.wait_ready)
            corpus = await asyncio.to_thread(chunk_pages, pages, COLLECTION)
            ingest = "api" if documents_api_exists() else "direct"
            started = time.monotonic()
            cached = _cached_vectors(corpus)
            if cached is not None:
                corpus = cached
                await store_directly(corpus, data_dir / "rag")
                ingest = f"direct (chunk vectors of an earlier ingestion, {_vector_cache_path(corpus).name})"
            elif ingest == "direct":
                corpus = await embed_corpus(corpus, triton.grpc_url)
                await store_directly(corpus, data_dir / "rag")
            htmls = [page.html for page in pages]
            async with (
                PageServer(htmls) as fast,
                PageServer(htmls, delay_s=SLOW_PAGE_DELAY_S) as slow,
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0),
                    timeout=aiohttp.ClientTimeout(total=CHAT_TIMEOUT_S),
                ) as session,
            ):
                system_context = LocalSystem.start(data_dir, nats=nats, triton=triton, extra_env=SYSTEM_ENV)
                async with system_context as system:
                    if ingest == "api" and cached is None:
                        ready, failure = await ingest_by_api(session, system.gateway_url, pages, COLLECTION)
                        if failure is not None:  # nothing was queued: store directly
                            corpus = await embed_corpus(corpus, triton.grpc_url)
                            await store_directly(corpus, data_dir / "rag")
                            ingest = f"direct (the upload API failed: {failure})"
                        elif ready < len(pages):
                            ingest = f"api ({ready} of {len(pages)} documents ready at the deadline)"
                    ingest_s = time.monotonic() - started
                    print(
                        f"ingest ({ingest}): {len(pages)} documents, {len(corpus.chunks)} chunks "
                        f"in {ingest_s:.1f} s",
                        flush=True,
                    )
                    index = (
                        baseline_index(corpus)
                        if corpus.vectors
                        else index_from_store(data_dir / "rag", COLLECTION)
                    )
                    index.save(data_dir / "baseline-index")
                    if cached is None:
                        _save_vectors(corpus, index, np.load(data_dir / "baseline-index" / "vectors.npy"))
                    pids = system.pids()
                    send = _sender(session, f"{system.gateway_url}/v1/chat")
                    metrics_url = f"http://127.0.0.1:{triton.options.metrics_port}/metrics"
                    counts = _embed_counts(session, metrics_url)
                    ours = await _measure("ours", send, fast, slow, corpus, pids, counts)
                    ours["profile"]["context_alone_p50_ms"] = await _profile_context(
                        system.nats.url, fast, corpus.titles[0]
                    )
                triton.stop()
                bases: dict[bool, dict[str, Any]] = {}
                for pace in (True, False):
                    index_dir, log_path = data_dir / "baseline-index", data_dir / "baseline.log"
                    async with _baseline(index_dir, log_path, pace=pace) as (url, pid):
                        side = "baseline" if pace else "baseline-unpaced"
                        send = _sender(session, f"{url}/chat")
                        bases[pace] = await _measure(side, send, fast, slow, corpus, {"baseline": pid})
        finally:
            triton.stop()
            nats.stop()
    return _results(
        ours,
        bases[True],
        bases[False],
        ingest=ingest,
        ingest_s=round(ingest_s, 1),
        documents=len(pages),
        chunks=len(index.chunks),
    )


def _sender(session: aiohttp.ClientSession, endpoint: str) -> Callable[[str, str], Any]:
    async def send(prompt: str, page_url: str) -> bool:
        async with session.post(endpoint, json={"prompt": prompt}) as response:
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {(await response.text())[:200]}")
            body = await response.json()
        sources = body.get("sources") or []
        # The page is cited when it is source [1] and the answer quotes it.
        return bool(sources) and sources[0].get("label") == page_url and "[1]" in body.get("answer", "")

    return send


def _prompt(url: str, title: str) -> str:
    return f"What does the page {url} say about {' '.join(title.split()[:16])}?"


async def _measure(
    side: str,
    send: Callable[[str, str], Any],
    fast: PageServer,
    slow: PageServer,
    corpus: Corpus,
    pids: dict[str, int],
    embed_counts: Callable[[], Awaitable[dict[str, float]]] | None = None,
) -> dict[str, Any]:
    titles = corpus.titles
    cited: list[bool] = []

    def chat(server: PageServer, run_tag: str, timeout_s: float = CHAT_TIMEOUT_S) -> Callable[[int], Any]:
        async def one(i: int) -> None:
            url = server.url(i % len(titles), f"{side}-{run_tag}-{i}")
            async with asyncio.timeout(timeout_s):
                cited.append(await send(_prompt(url, titles[i % len(titles)]), url))

        return one

    print(f"[{side}] warm-up: {WARMUP_CHATS} chats", flush=True)
    warm = await run_load(
        chat(fast, "warm"), concurrency=CONCURRENCY, max_requests=WARMUP_CHATS, max_duration_s=MAX_DURATION_S
    )
    if warm.errors:
        raise RuntimeError(f"{side}: warm-up chats failed: {warm.errors[:3]}")
    cited.clear()
    load_avg_before = os.getloadavg()[0]
    cpu_before = {name: process_tree_cpu_s(pid) for name, pid in pids.items() if pid}
    counts_before = await embed_counts() if embed_counts is not None else {}
    print(f"[{side}] throughput: c{CONCURRENCY} for up to {MAX_DURATION_S:.0f} s", flush=True)
    load = await run_load(
        chat(fast, "c16"), concurrency=CONCURRENCY, max_requests=MAX_CHATS, max_duration_s=MAX_DURATION_S
    )
    cpu = {name: process_tree_cpu_s(pid) - cpu_before[name] for name, pid in pids.items() if pid}
    counts = await embed_counts() if embed_counts is not None else {}
    batching = _batching(counts_before, counts, max(1, load.ok))
    c16_cited = sum(cited) / max(1, len(cited))
    cited.clear()
    print(
        f"[{side}] slow pages: {SLOW_CHATS} chats at once, pages answered after {SLOW_PAGE_DELAY_S} s",
        flush=True,
    )
    slow_chat = chat(slow, "slow", SLOW_RUN_TIMEOUT_S)
    cpu_before = {name: process_tree_cpu_s(pid) for name, pid in pids.items() if pid}
    slow_run = await run_load(
        slow_chat, concurrency=SLOW_CHATS, max_requests=SLOW_CHATS, max_duration_s=MAX_DURATION_S
    )
    slow_cpu = {name: process_tree_cpu_s(pid) - cpu_before[name] for name, pid in pids.items() if pid}
    ok = max(1, load.ok)
    print(f"[{side}] c{CONCURRENCY}: {load.summary()}; slow pages: {slow_run.summary()}", flush=True)
    return {
        "chat_rps_c16": round(load.rps, 2),
        "chat_p50_ms_c16": round(percentile(load.latencies_s, 50) * 1000, 1),
        "chat_p99_ms_c16": round(percentile(load.latencies_s, 99) * 1000, 1),
        "chats_c16": load.ok,
        "errors_c16": len(load.errors),
        "page_cited_share_c16": round(c16_cited, 3),
        "slow_pages_wall_s": round(slow_run.wall_s, 2),
        "slow_pages_ok": slow_run.ok,
        "slow_pages_unfinished_at_timeout": sum(e.startswith("TimeoutError") for e in slow_run.errors),
        "slow_pages_errors": len(slow_run.errors),
        "slow_pages_cited_share": round(sum(cited) / max(1, len(cited)), 3),
        "slow_pages_p50_ms": round(percentile(slow_run.latencies_s, 50) * 1000, 1),
        "machine_load_avg_1m_before_c16": round(load_avg_before, 2),
        "profile": {
            "cpu_ms_per_chat_c16": {name: round(seconds * 1000 / ok, 1) for name, seconds in cpu.items()},
            "cpu_utilisation_c16": round(sum(cpu.values()) / load.wall_s, 2) if load.wall_s else 0.0,
            "cpu_ms_per_chat_slow": {
                name: round(seconds * 1000 / SLOW_CHATS, 1) for name, seconds in slow_cpu.items()
            },
            **({"embed_batching_c16": batching} if batching else {}),
        },
        "sample_errors": (load.errors + slow_run.errors)[:3],
    }


_METRIC = re.compile(
    r'^(nv_inference_(?:count|exec_count|request_success))\{model="embed",[^}]*\} (\S+)$', re.MULTILINE
)


def _embed_counts(session: aiohttp.ClientSession, url: str) -> Callable[[], Awaitable[dict[str, float]]]:
    """A reader of the `embed` model's counters in Triton's Prometheus metrics (empty on failure)."""

    async def read() -> dict[str, float]:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=METRICS_TIMEOUT_S)) as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return {}
        return {name: float(value) for name, value in _METRIC.findall(text)}

    return read


def _batching(before: dict[str, float], after: dict[str, float], chats: int) -> dict[str, float]:
    """Rows and requests per execution of the embed model, and rows per chat, between two reads."""
    delta = {name: after[name] - before.get(name, 0.0) for name in after}
    executions = delta.get("nv_inference_exec_count", 0.0)
    if not executions:
        return {}
    rows, requests = delta.get("nv_inference_count", 0.0), delta.get("nv_inference_request_success", 0.0)
    return {
        "rows_per_execution": round(rows / executions, 1),
        "requests_per_execution": round(requests / executions, 2),
        "rows_per_chat": round(rows / chats, 1),
        "requests_per_chat": round(requests / chats, 2),
    }


def _vector_cache_path(corpus: Corpus) -> Path:
    # The graph's file name names the model, its precision, the versions and the recipe.
    graph = load_model_module("onnx_export", EMBED_MODEL_DIR).onnx_file_name(EMBED_PRECISION)
    digest = hashlib.sha256(graph.encode())
    for chunk in corpus.chunks:
        digest.update(f"{chunk.file_name}\0{chunk.index}\0{chunk.text}\0".encode())
    return VECTOR_CACHE_DIR / f"gateway-vectors-{digest.hexdigest()[:16]}.npy"


def _cached_vectors(corpus: Corpus) -> Corpus | None:
    """The corpus with the vectors an earlier run stored for exactly these chunks, if any."""
    path = _vector_cache_path(corpus)
    if not path.is_file():
        return None
    vectors = np.load(path)
    if len(vectors) != len(corpus.chunks):
        return None
    return Corpus(corpus.collection, corpus.chunks, corpus.titles, vectors.tolist())


def _save_vectors(corpus: Corpus, index: DocumentIndex, vectors: np.ndarray[Any, Any]) -> None:
    """Keep the ingested vectors (rows of `index`) in chunk order for later runs, if every chunk is there."""
    by_chunk = {(c.file_name, c.index): row for row, c in enumerate(index.chunks)}
    rows = [by_chunk.get((c.file_name, c.index)) for c in corpus.chunks]
    if any(row is None for row in rows):
        return
    VECTOR_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.save(_vector_cache_path(corpus), vectors[[row for row in rows if row is not None]])


async def _profile_context(nats_url: str, fast: PageServer, title: str) -> dict[str, float]:
    """p50 ms of each context step alone, one call at a time, straight over the bus."""
    client = await nats_client.connect(nats_url)
    timings: dict[str, list[float]] = {"scrape": [], "retrieve": [], "embed_query": []}
    try:
        for i in range(PROFILE_REPEATS):
            url = fast.url(0, f"profile-{i}")
            prompt = _prompt(url, title)
            calls = {
                "scrape": (SCRAPE, ScrapeRequest(prompt=prompt, timeout_ms=5000)),
                "retrieve": (RETRIEVE, RetrieveRequest(query=prompt, k=4, timeout_ms=5000)),
                "embed_query": (EMBED, EmbedRequest(texts=[prompt], timeout_ms=5000)),
            }
            for name, (subject, message) in calls.items():
                started = time.perf_counter()
                try:
                    await client.request(subject, encode(message), timeout=PROFILE_TIMEOUT_S)
                except nats_client.errors.Error:
                    continue  # a missing figure, not a failed benchmark
                timings[name].append(time.perf_counter() - started)
    finally:
        await client.close()
    return {name: round(percentile(values, 50) * 1000, 1) for name, values in timings.items()}


@asynccontextmanager
async def _baseline(index_dir: Path, log_path: Path, *, pace: bool) -> AsyncIterator[tuple[str, int]]:
    """The baseline FastAPI process on a free port, ready; stopped at the end."""
    port = free_port()
    process = _spawn_baseline(port, index_dir, log_path, pace=pace)
    try:
        await asyncio.to_thread(wait_for_port, port, BASELINE_START_TIMEOUT_S, process)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _spawn_baseline(port: int, index_dir: Path, log_path: Path, *, pace: bool) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bench.baseline", "--port", str(port), "--index", str(index_dir)]
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command if pace else [*command, "--no-pace"],
            cwd=ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TORCHINDUCTOR_CACHE_DIR": str(index_dir / "ti")},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _results(
    ours: dict[str, Any], base: dict[str, Any], unpaced: dict[str, Any], **facts: Any
) -> dict[str, Any]:
    rps_ratio = ours["chat_rps_c16"] / base["chat_rps_c16"] if base["chat_rps_c16"] else 0.0
    results = dict(ours)
    results["baseline"] = base
    results["baseline_unpaced"] = unpaced
    results.update(facts)
    results["system_env"] = SYSTEM_ENV
    results["chat_rps_ratio_c16"] = round(rps_ratio, 2)
    cpu = ours["profile"]["cpu_ms_per_chat_c16"]
    results["cpu_ms_per_chat_c16_total"] = {
        "ours": round(sum(cpu.values()), 1),
        "baseline": round(sum(base["profile"]["cpu_ms_per_chat_c16"].values()), 1),
    }
    results["largest_cpu_user_ours"] = max(cpu, key=cpu.__getitem__) if cpu else ""
    results["targets"] = {
        "chat_rps_c16_at_least_2x_baseline": rps_ratio >= 2.0,
        "chat_p99_c16_below_baseline": ours["chat_p99_ms_c16"] < base["chat_p99_ms_c16"],
        "slow_pages_wall_s_at_most_3": ours["slow_pages_wall_s"] <= 3.0,
    }
    return results


def _print_table(results: dict[str, Any]) -> None:
    base, unpaced = results["baseline"], results["baseline_unpaced"]
    rows = [
        ("chat_rps_c16", "chats/s at 16 in flight"),
        ("chat_p50_ms_c16", "p50 ms"),
        ("chat_p99_ms_c16", "p99 ms"),
        ("page_cited_share_c16", "share citing their page"),
        ("slow_pages_wall_s", f"{SLOW_CHATS} slow-page chats, wall s"),
        ("slow_pages_cited_share", "slow chats citing their page"),
    ]
    print(f"\n{'':38} {'ours':>10} {'baseline':>10} {'baseline, model unpaced':>24}")
    for key, label in rows:
        print(f"{label:38} {results[key]:>10} {base[key]:>10} {unpaced[key]:>24}")
    print(f"\ningest: {results['ingest']}; targets: {results['targets']}")
    print(f"CPU ms per chat (ours): {results['profile']['cpu_ms_per_chat_c16']}")
    print(f"CPU ms per chat (baseline): {base['profile']['cpu_ms_per_chat_c16']}")
    print(f"context steps alone, p50 ms (ours): {results['profile']['context_alone_p50_ms']}")
