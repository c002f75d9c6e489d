"""Small helpers shared by the benchmarks: dataset pages, a local page server, a load generator.

- `dataset_pages` reads the article-extraction pages (`.html.gz`) in name order.
- `PageServer` serves those pages on 127.0.0.1, optionally after a fixed delay
  (a slow site), under any number of distinct URLs (`url(index, tag)`), so a
  benchmark can defeat caches on purpose.
- `run_load` sends calls with a bounded number in flight for a bounded time
  and summarises them (`LoadResult`: throughput, p50, p99, errors).
"""

from __future__ import annotations

import asyncio
import gzip
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = [
    "DATASET_HTML_DIR",
    "DatasetPage",
    "LoadResult",
    "PageServer",
    "dataset_pages",
    "percentile",
    "process_tree_cpu_s",
    "run_load",
]

DATASET_HTML_DIR = Path("/work/shared/datasets/article-extraction/html")


@dataclass(frozen=True)
class DatasetPage:
    """One benchmark page: a short stable name and its HTML bytes."""

    name: str
    html: bytes


def dataset_pages(directory: Path = DATASET_HTML_DIR, limit: int | None = None) -> list[DatasetPage]:
    """The `.html.gz` pages of `directory` in name order (at most `limit`)."""
    paths = sorted(directory.glob("*.html.gz"))[:limit]
    if not paths:
        raise FileNotFoundError(f"no .html.gz pages in {directory}")
    return [DatasetPage(path.name.split(".")[0][:16], gzip.decompress(path.read_bytes())) for path in paths]


class PageServer:
    """An aiohttp server on 127.0.0.1 answering `/p/<index>/<tag>` with page `index % len(pages)`.

    Every answer waits `delay_s` first (without blocking the loop), the way a
    slow site does. The tag only makes distinct URLs for the same page.
    """

    def __init__(self, pages: Sequence[bytes], *, delay_s: float = 0.0) -> None:
        if not pages:
            raise ValueError("a page server needs at least one page")
        self._pages = list(pages)
        self._delay_s = delay_s
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.served = 0

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` once started."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, index: int, tag: str = "0") -> str:
        """A URL of page `index`; different tags give different URLs of the same page."""
        return f"{self.base_url}/p/{index}/{tag}"

    async def __aenter__(self) -> PageServer:
        app = web.Application()
        app.router.add_get("/p/{index:\\d+}/{tag}", self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only through the asyncio server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = int(server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _page(self, request: web.Request) -> web.Response:
        if self._delay_s > 0:
            await asyncio.sleep(self._delay_s)  # the site's response time, not synchronisation
        self.served += 1
        html = self._pages[int(request.match_info["index"]) % len(self._pages)]
        return web.Response(body=html, content_type="text/html", charset="utf-8")


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class LoadResult:
    """What a load run measured; latencies of successful calls only, in seconds."""

    concurrency: int
    wall_s: float
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        """Successful calls."""
        return len(self.latencies_s)

    @property
    def rps(self) -> float:
        """Successful calls per second of wall time."""
        return self.ok / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self, prefix: str = "") -> dict[str, Any]:
        """Figures for a results file: rps, p50/p99 in ms, counts."""
        return {
            f"{prefix}rps": round(self.rps, 2),
            f"{prefix}p50_ms": round(percentile(self.latencies_s, 50) * 1000, 1),
            f"{prefix}p99_ms": round(percentile(self.latencies_s, 99) * 1000, 1),
            f"{prefix}requests": self.ok,
            f"{prefix}errors": len(self.errors),
            f"{prefix}wall_s": round(self.wall_s, 2),
        }


async def run_load(
    call: Callable[[int], Awaitable[None]],
    *,
    concurrency: int,
    max_requests: int,
    max_duration_s: float,
) -> LoadResult:
    """Call `call(i)` for i = 0, 1, ... with `concurrency` in flight, until either bound is reached.

    A call that raises counts as an error (its message is kept); no new call
    starts after `max_duration_s`, and calls in flight are awaited.
    """
    result = LoadResult(concurrency=concurrency, wall_s=0.0)
    next_index = 0
    started = time.perf_counter()
    stop_at = started + max_duration_s

    async def worker() -> None:
        nonlocal next_index
        while next_index < max_requests and time.perf_counter() < stop_at:
            index = next_index
            next_index += 1
            t0 = time.perf_counter()
            try:
                await call(index)
            except Exception as exc:  # a failed request is a measured outcome, not a crash
                result.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            else:
                result.latencies_s.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.wall_s = time.perf_counter() - started
    return result


def process_tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and its live descendants (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    usage: dict[int, tuple[int, float]] = {}  # pid -> (parent pid, cpu seconds)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        usage[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    tree = {pid}
    grew = True
    while grew:
        children = {child for child, (parent, _) in usage.items() if parent in tree} - tree
        grew = bool(children)
        tree |= children
    return sum(usage[p][1] for p in tree if p in usage)
