"""`just bench scraper`: extraction quality, and pages/s through the bus at concurrency 1 and 100.

- Quality: `bench.extraction_score.run_quality` on the 91 dataset pages (the extraction
  code the service runs), and the same metric on the texts the service returned.
- Throughput: the 91 pages served by a local aiohttp site on 127.0.0.1 that waits 200 ms
  before every answer; one URL per `scrape` request through a real nats-server to the
  real scraper process. Every request carries a new URL (a unique path tag), so the cache
  never answers: every page is really fetched and extracted (and written to the cache).
- The site is ONE host: the service runs with `SCRAPER_PER_HOST_CONCURRENCY=100` and
  `SCRAPER_MAX_CONCURRENCY=100` (defaults 2 and 8, a polite crawler's), set below.
- Event-loop lag is measured inside the service (`SCRAPER_LOOP_LAG_PROBE_S`), read over
  `scraper.stats` after being reset just before the c100 run.
- Baseline: the seed chapter's scraper behind the bus (`bench/baseline/scraper_baseline.py`),
  same site, same requests, same figures.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NatsClient

from bench.baseline.scraper_baseline import BASELINE_STATS, BASELINE_SUBJECT
from bench.common import LoadResult, PageServer, run_load
from bench.extraction_score import default_dataset_dir, load_dataset, run_quality, score
from deploy.cluster import ROOT, NatsServer, ServiceProcess
from proto.common import ErrorReply, decode, encode
from proto.context import ScrapeReply, ScrapeRequest
from proto.stats import LoopLagStats, StatsRequest
from proto.subjects import SCRAPE, SCRAPER_STATS

__all__ = ["run"]

SITE_DELAY_S = 0.2
C1_REQUESTS = 30
C100_REQUESTS = 364  # every page four times
BASELINE_C100_REQUESTS = 100  # the baseline answers one request at a time: one wave is enough
MAX_RUN_S = 45.0
REQUEST_TIMEOUT_MS = 60_000
LOOP_LAG_PROBE_S = 0.01
SERVICE_ENV = {
    "SCRAPER_ALLOW_HOSTS": "127.0.0.1",
    "SCRAPER_RESPECT_ROBOTS": "false",
    "SCRAPER_PER_HOST_CONCURRENCY": "100",
    "SCRAPER_MAX_CONCURRENCY": "100",
    "SCRAPER_LOOP_LAG_PROBE_S": str(LOOP_LAG_PROBE_S),
}


class _Target:
    """Where requests go: the service's or the baseline's subjects, and its process."""

    def __init__(self, name: str, subject: str, stats_subject: str, pid: int) -> None:
        self.name = name
        self.subject = subject
        self.stats_subject = stats_subject
        self.pid = pid


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (Linux /proc); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _child_pids(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return children


def _machine_busy() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class _CpuMeter:
    """CPU used per page by a service's process and its children (extraction workers)."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._children = _child_pids(pid)
        self._start = self._now()

    def _now(self) -> tuple[float, float, tuple[int, int]]:
        children = sum(_cpu_s(child) for child in self._children)
        return _cpu_s(self._pid), children, _machine_busy()

    def figures(self, pages: int) -> dict[str, float]:
        """ms of CPU per page, and the share of the machine busy (with anything) meanwhile."""
        loop_s, children_s, (busy, total) = self._now()
        loop0, children0, (busy0, total0) = self._start
        per_page = 1000 / max(pages, 1)
        service_ms = (loop_s - loop0) * per_page
        children_ms = (children_s - children0) * per_page
        ceiling = (os.cpu_count() or 1) * 1000 / max(service_ms + children_ms, 0.01)
        return {
            "cpu_ms_per_page_service_process": round(service_ms, 2),
            "cpu_ms_per_page_child_processes": round(children_ms, 2),
            # What the service's own CPU use allows when it has every core to itself.
            "cpu_bound_pages_per_s_on_free_cores": round(ceiling, 1),
            "machine_cpu_busy_share": round((busy - busy0) / max(total - total0, 1), 3),
        }


class _Site:
    """The page server and how many pages it serves."""

    def __init__(self, server: PageServer, page_count: int) -> None:
        self.server = server
        self.page_count = page_count


async def _stats(client: NatsClient, target: _Target, *, reset: bool = False) -> LoopLagStats:
    message = await client.request(target.stats_subject, encode(StatsRequest(reset=reset)), timeout=5)
    return decode(message.data, LoopLagStats)


def _scrape_call(
    client: NatsClient, target: _Target, site: _Site, run_tag: str, texts: dict[int, str]
) -> Callable[[int], Awaitable[None]]:
    """One request for page ``index`` (modulo the site's pages) under a URL never asked before."""

    async def call(index: int) -> None:
        page_index = index % site.page_count
        url = site.server.url(page_index, f"{run_tag}-{index}")
        request = ScrapeRequest(urls=[url], timeout_ms=REQUEST_TIMEOUT_MS)
        message = await client.request(target.subject, encode(request), timeout=REQUEST_TIMEOUT_MS / 1000 + 5)
        reply: ScrapeReply | ErrorReply = decode(message.data, ScrapeReply | ErrorReply)
        if isinstance(reply, ErrorReply):
            raise RuntimeError(f"{reply.code}: {reply.detail}")
        if not reply.pages:
            raise RuntimeError("; ".join(f"{e.code}: {e.detail}" for e in reply.errors) or "no page")
        texts.setdefault(page_index, reply.pages[0].text)

    return call


async def _measure(
    client: NatsClient, target: _Target, site: _Site, c100_requests: int
) -> tuple[dict[str, Any], dict[int, str]]:
    texts: dict[int, str] = {}
    run_tag = uuid.uuid4().hex[:8]
    warm_up = _scrape_call(client, target, site, f"{run_tag}w", {})
    warm = await run_load(warm_up, concurrency=4, max_requests=8, max_duration_s=30)
    if warm.errors:
        raise RuntimeError(f"{target.name} fails its warm-up requests: {warm.errors[:3]}")
    c1 = await run_load(
        _scrape_call(client, target, site, f"{run_tag}a", texts),
        concurrency=1,
        max_requests=C1_REQUESTS,
        max_duration_s=MAX_RUN_S,
    )
    await _stats(client, target, reset=True)
    meter = _CpuMeter(target.pid)
    c100 = await run_load(
        _scrape_call(client, target, site, f"{run_tag}b", texts),
        concurrency=100,
        max_requests=c100_requests,
        max_duration_s=MAX_RUN_S,
    )
    lag = await _stats(client, target)
    figures: dict[str, Any] = {
        "pages_per_s_c1": round(c1.rps, 2),
        "pages_per_s_c100": round(c100.rps, 2),
        "loop_lag_p99_ms": lag.loop_lag_p99_ms,
        "loop_lag_max_ms": lag.loop_lag_max_ms,
        "loop_lag_samples": lag.loop_lag_samples,
        **_load_figures("c1_", c1),
        **_load_figures("c100_", c100),
        **{f"c100_{name}": value for name, value in meter.figures(c100.ok).items()},
    }
    return figures, texts


def _load_figures(prefix: str, result: LoadResult) -> dict[str, Any]:
    figures = result.summary(prefix)
    figures.pop(f"{prefix}rps")
    if result.errors:
        figures[f"{prefix}first_errors"] = result.errors[:3]
    return figures


def _start_baseline(nats_url: str, log_dir: Path) -> subprocess.Popen[bytes]:
    log = (log_dir / "scraper_baseline.log").open("ab")
    command = [sys.executable, "-m", "bench.baseline.scraper_baseline", "--nats-url", nats_url]
    command += ["--loop-lag-probe-s", str(LOOP_LAG_PROBE_S)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return process


async def _wait_answering(client: NatsClient, target: _Target, process: subprocess.Popen[bytes]) -> None:
    """Readiness probe: the baseline answers its stats subject."""
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"the baseline exited with {process.returncode}")
        try:
            await _stats(client, target)
            return
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            await asyncio.sleep(0.05)  # polling interval of a readiness probe
    raise TimeoutError("the baseline never answered")


def _service_quality(texts: dict[int, str], keys: list[str], truths: dict[str, str]) -> dict[str, float]:
    """F1/P/R of the texts the service returned, over the pages it returned."""
    read = {keys[index]: text for index, text in texts.items()}
    found = score(read, {key: truths[key] for key in read})
    return {"f1": round(found.f1, 4), "precision": round(found.precision, 4), "pages": found.pages}


async def _throughput(work_dir: Path) -> dict[str, Any]:
    pages, truths = load_dataset(default_dataset_dir())
    keys = sorted(pages)
    nats_server = NatsServer(work_dir / "nats")
    nats_server.start()
    service = ServiceProcess("scraper", {"SCRAPER_NATS_URL": nats_server.url, **SERVICE_ENV}, work_dir)
    baseline: subprocess.Popen[bytes] | None = None
    try:
        async with PageServer([pages[key] for key in keys], delay_s=SITE_DELAY_S) as server:
            site = _Site(server, len(keys))
            service.start()
            baseline = _start_baseline(nats_server.url, work_dir)
            await service.wait_healthy(nats_server.url)
            client = await nats.connect(nats_server.url)
            try:
                ours = _Target("scraper", SCRAPE, SCRAPER_STATS, service.process.pid)
                seed = _Target("baseline", BASELINE_SUBJECT, BASELINE_STATS, baseline.pid)
                await _wait_answering(client, seed, baseline)
                figures, texts = await _measure(client, ours, site, C100_REQUESTS)
                figures["through_service"] = _service_quality(texts, keys, truths)
                baseline_figures, _ = await _measure(client, seed, site, BASELINE_C100_REQUESTS)
            finally:
                await client.close()
    finally:
        if baseline is not None:
            baseline.terminate()
            baseline.wait(timeout=20)
        service.stop()
        nats_server.stop()
    figures["baseline"] = baseline_figures
    return figures


def _print_side_by_side(results: dict[str, Any]) -> None:
    baseline = results["baseline"]
    rows = ["f1", "precision", "recall", "pages_per_s_c1", "pages_per_s_c100", "loop_lag_p99_ms"]
    rows += ["c1_p50_ms", "c100_p50_ms", "c100_p99_ms", "c100_errors"]
    rows += ["c100_cpu_ms_per_page_service_process", "c100_cpu_ms_per_page_child_processes"]
    rows += ["c100_cpu_bound_pages_per_s_on_free_cores", "c100_machine_cpu_busy_share"]
    print(f"{'figure':<38} {'scraper':>10} {'baseline':>10}")
    for row in rows:
        print(f"{row:<38} {results.get(row, '-')!s:>10} {baseline.get(row, '-')!s:>10}")
    print(f"through the service: {results['through_service']}")
    if results["c100_machine_cpu_busy_share"] > 0.9:
        print("note: the cores were saturated during c100 (other work too?): throughput is CPU-bound")


def run() -> dict[str, Any]:
    """Run the scraper benchmark; return the figures (the dispatcher writes the JSON)."""
    load_before = os.getloadavg()[0]  # other work on the machine shares its cores
    quality = run_quality(default_dataset_dir())
    with tempfile.TemporaryDirectory(prefix="bench-scraper-") as work_dir:
        results = asyncio.run(_throughput(Path(work_dir)))
    ours, seed = quality["htmltext"], quality["seed_bs4_bodyContent"]
    for name in ("f1", "precision", "recall"):
        results[name] = round(ours[name], 4)
        results["baseline"][name] = round(seed[name], 4)
    results["extraction_ms_per_page"] = ours["ms_per_page"]
    results["baseline"]["extraction_ms_per_page"] = seed["ms_per_page"]
    results["setup"] = {
        "site_delay_ms": int(SITE_DELAY_S * 1000),
        "one_url_per_request": True,
        "cache_bypass": "a unique path tag per request: every page is fetched, extracted and cached",
        "service_env": SERVICE_ENV,
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(load_before, 2),
        "baseline": "seed chapter 5-6 behind a nats-py subscription: one request at a time, bs4 on the loop",
    }
    _print_side_by_side(results)
    return results
