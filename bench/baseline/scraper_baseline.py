"""The seed chapter's scraper (example 5-6) behind the bus, as the scraper benchmark's baseline.

The seed's code as printed: its URL regex, one `aiohttp.ClientSession` per call with no
timeouts or bounds, `response.text()`, and BeautifulSoup reading `div#bodyContent`, run
inline on the event loop. Behind the bus it answers the same `ScrapeRequest` as the
scraper service, with a plain nats-py subscription: nats-py awaits one callback at a
time, so requests are fetched one by one, as the seed's pattern does. It finds no text
on the benchmark pages (they are not Wikipedia pages): a page it read is still counted as
read, so the throughput figures compare the fetching and parsing work only.

`python -m bench.baseline.scraper_baseline --nats-url URL` serves until SIGTERM; it
answers `StatsRequest` on `--stats-subject` with its event-loop lag.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal

import aiohttp
import nats
from bs4 import BeautifulSoup
from nats.aio.msg import Msg

from proto.common import decode, encode
from proto.context import ScrapedPage, ScrapeReply, ScrapeRequest
from proto.stats import StatsRequest
from runtime.looplag import LoopLagProbe

__all__ = [
    "BASELINE_STATS",
    "BASELINE_SUBJECT",
    "extract_urls",
    "fetch",
    "fetch_all",
    "main",
    "parse_inner_text",
]

BASELINE_SUBJECT = "bench.scrape.baseline"
BASELINE_STATS = "bench.scrape.baseline.stats"
_URL_PATTERN = r"(?P<url>https?:\/\/[^\s]+)"  # the seed's pattern, as printed


def extract_urls(text: str) -> list[str]:
    """Every http(s) URL in `text` (the seed's regex)."""
    return re.findall(_URL_PATTERN, text)


def parse_inner_text(html_string: str) -> str:
    """The seed's parser: the text of `div#bodyContent`, or "" (it logs a warning there)."""
    soup = BeautifulSoup(html_string, "lxml")
    if content := soup.find("div", id="bodyContent"):
        return str(content.get_text())
    return ""


async def fetch(session: aiohttp.ClientSession, url: str) -> str:
    """GET one page and parse it, on the event loop."""
    async with session.get(url) as response:
        html_string = await response.text()
        return parse_inner_text(html_string)


async def fetch_all(urls: list[str]) -> list[tuple[str, str]]:
    """(url, text) of every page read; failures are dropped, as in the seed."""
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(*[fetch(session, url) for url in urls], return_exceptions=True)
    return [(url, text) for url, text in zip(urls, results, strict=True) if isinstance(text, str)]


async def _serve(nats_url: str, subject: str, stats_subject: str, probe_s: float) -> None:
    client = await nats.connect(nats_url)
    probe = LoopLagProbe(probe_s, 4096)
    probe.start()

    async def scrape(message: Msg) -> None:
        request: ScrapeRequest = decode(message.data, ScrapeRequest)
        urls = request.urls or extract_urls(request.prompt)
        pages = [ScrapedPage(url=url, final_url=url, text=text) for url, text in await fetch_all(urls)]
        await message.respond(encode(ScrapeReply(pages=pages)))

    async def stats(message: Msg) -> None:
        request: StatsRequest = decode(message.data, StatsRequest)
        figures = probe.stats()
        if request.reset:
            probe.reset()
        await message.respond(encode(figures))

    await client.subscribe(subject, cb=scrape)
    await client.subscribe(stats_subject, cb=stats)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await probe.stop()
    await client.drain()


def main(argv: list[str] | None = None) -> None:
    """Serve the baseline scraper on the bus until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--subject", default=BASELINE_SUBJECT)
    parser.add_argument("--stats-subject", default=BASELINE_STATS)
    parser.add_argument("--loop-lag-probe-s", type=float, default=0.01)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.nats_url, args.subject, args.stats_subject, args.loop_lag_probe_s))


if __name__ == "__main__":
    main()
