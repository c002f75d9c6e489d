"""Scraper: per-URL results and errors, the caller's deadline, bounds, and the KV cache.

Real pieces throughout: local aiohttp sites, a real PageFetcher, a real extraction
process pool and a real JetStream key-value bucket on the session's nats-server.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, cast

import msgspec
import nats
import pytest
from aiohttp import web
from nats.js.errors import KeyNotFoundError
from structlog.testing import capture_logs

from htmltext.pool import ExtractorPool
from proto.context import ScrapedPage, ScrapeRequest
from services.scraper.cache import PageCache
from services.scraper.fetch import PageFetcher
from services.scraper.scrape import BadScrapeRequest, Scraper
from services.scraper.settings import ScraperSettings

if TYPE_CHECKING:
    from nats.js.kv import KeyValue

    from deploy.cluster import NatsServer
    from tests.unit.scraper.conftest import Serve

ARTICLE = """<!doctype html><html lang="en"><head><title>Harbour lights</title></head><body>
<nav><a href="/">Home</a></nav><article><h1>Harbour lights</h1>
<p>The old harbour lights were replaced last spring by a row of low lamps that the fishermen
say are easier on the eyes when they come back in the dark after a long night at sea.</p>
<p>The council paid for the work from the maintenance fund and finished it in six weeks.</p>
</article><footer>Contact us</footer></body></html>"""


async def _article(request: web.Request) -> web.Response:
    return web.Response(text=ARTICLE, content_type="text/html")


async def _missing(request: web.Request) -> web.Response:
    raise web.HTTPNotFound()


async def _image(request: web.Request) -> web.Response:
    return web.Response(body=b"\x89PNG\r\n", content_type="image/png")


@pytest.fixture(scope="module")
def extractor() -> Iterator[ExtractorPool]:
    pool = ExtractorPool(workers=1)
    yield pool
    pool.close()


@pytest.fixture
async def scraper(settings: ScraperSettings, extractor: ExtractorPool) -> AsyncIterator[Scraper]:
    async with PageFetcher(settings) as fetcher:
        yield Scraper(settings, fetcher, extractor)


@pytest.fixture
async def cache(nats_server: NatsServer) -> AsyncIterator[PageCache]:
    client = await nats.connect(nats_server.url)
    js = client.jetstream()
    bucket_name = f"test-scrape-cache-{uuid.uuid4().hex[:8]}"
    bucket = await js.create_key_value(bucket=bucket_name, ttl=3600)
    yield PageCache(bucket, timeout_s=2.0)
    await js.delete_key_value(bucket_name)
    await client.close()


async def test_partial_results_with_an_error_per_url(serve: Serve, scraper: Scraper) -> None:
    async with serve({"/a": _article, "/missing": _missing, "/img": _image}) as site:
        urls = [site.url("/a"), site.url("/missing"), site.url("/img"), "http://[::1"]
        reply = await scraper.scrape(ScrapeRequest(urls=urls, timeout_ms=10_000))
    assert [page.url for page in reply.pages] == [site.url("/a")]
    page = reply.pages[0]
    assert page.title == "Harbour lights"
    assert "low lamps" in page.text and "Contact us" not in page.text
    assert page.language == "en" and page.cached is False
    codes = {error.url: error.code for error in reply.errors}
    assert codes == {
        "http://[::1": "invalid_url",
        site.url("/missing"): "http_status",
        site.url("/img"): "unsupported_type",
    }


async def test_urls_found_in_the_prompt_and_deduplicated(serve: Serve, scraper: Scraper) -> None:
    async with serve({"/a": _article}) as site:
        prompt = f"Summarise {site.url('/a')}, then ({site.url('/a')}#top) and HTTP://{site.base[7:]}/a."
        reply = await scraper.scrape(ScrapeRequest(prompt=prompt, timeout_ms=10_000))
        assert site.total_hits == 1
    assert [page.url for page in reply.pages] == [site.url("/a")]
    assert reply.errors == []


async def test_explicit_urls_win_over_the_prompt_and_are_deduplicated(serve: Serve, scraper: Scraper) -> None:
    async with serve({"/a": _article, "/b": _article}) as site:
        request = ScrapeRequest(
            prompt=f"ignored {site.url('/b')}", urls=[site.url("/a"), site.url("/a#x")], timeout_ms=10_000
        )
        reply = await scraper.scrape(request)
        assert dict(site.hits) == {"/a": 1}
    assert len(reply.pages) == 1


async def test_at_most_max_urls_are_read(
    serve: Serve, settings: ScraperSettings, extractor: ExtractorPool
) -> None:
    settings = msgspec.structs.replace(settings, max_urls=3)
    async with serve({"/{n}": _article}) as site, PageFetcher(settings) as fetcher:
        scraper = Scraper(settings, fetcher, extractor)
        reply = await scraper.scrape(ScrapeRequest(urls=[site.url(f"/{n}") for n in range(12)]))
        assert site.total_hits == 3
    assert len(reply.pages) == 3


async def test_the_reply_comes_before_the_callers_deadline(serve: Serve, scraper: Scraper) -> None:
    release = asyncio.Event()

    async def never(request: web.Request) -> web.Response:
        await release.wait()
        return await _article(request)

    async with serve({"/a": _article, "/never": never}) as site:
        started = time.monotonic()
        try:
            request = ScrapeRequest(urls=[site.url("/a"), site.url("/never")], timeout_ms=800)
            reply = await scraper.scrape(request)
            elapsed = time.monotonic() - started
        finally:
            release.set()
    assert elapsed < 0.8
    assert [page.url for page in reply.pages] == [site.url("/a")]
    assert [(error.url, error.code) for error in reply.errors] == [(site.url("/never"), "timeout")]


async def test_a_request_without_time_is_refused(scraper: Scraper) -> None:
    with pytest.raises(BadScrapeRequest) as caught:
        await scraper.scrape(ScrapeRequest(urls=["http://127.0.0.1/"], timeout_ms=0))
    assert caught.value.code == "bad_request"


async def test_extraction_failure_is_a_per_url_error(serve: Serve, settings: ScraperSettings) -> None:
    closed_pool = ExtractorPool(workers=1)
    closed_pool.close()
    async with serve({"/a": _article}) as site, PageFetcher(settings) as fetcher:
        reply = await Scraper(settings, fetcher, closed_pool).scrape(ScrapeRequest(urls=[site.url("/a")]))
    assert reply.pages == []
    assert [error.code for error in reply.errors] == ["extraction_failed"]


async def test_a_cache_hit_makes_no_request(serve: Serve, scraper: Scraper, cache: PageCache) -> None:
    scraper.use_cache(cache)
    async with serve({"/a": _article, "/missing": _missing}) as site:
        request = ScrapeRequest(urls=[site.url("/a"), site.url("/missing")], timeout_ms=10_000)
        first = await scraper.scrape(request)
        await scraper.close()  # the cache write happens after the reply
        second = await scraper.scrape(request)
        # Same page under another spelling of the same normalised URL.
        third = await scraper.scrape(ScrapeRequest(urls=[f"HTTP://{site.base[7:]}/a#frag"]))
        assert dict(site.hits) == {"/a": 1, "/missing": 2}  # failures are not cached
    assert [page.cached for page in first.pages] == [False]
    assert [page.cached for page in second.pages + third.pages] == [True, True]
    assert second.pages[0].text == first.pages[0].text
    assert third.pages[0].url == f"HTTP://{site.base[7:]}/a#frag"
    assert [error.code for error in second.errors] == ["http_status"]


class _BrokenBucket:
    """A key-value bucket that holds nothing and fails every write with an error no one expects."""

    async def get(self, key: str) -> object:
        raise KeyNotFoundError

    async def put(self, key: str, value: bytes) -> int:
        raise RuntimeError("the bucket broke")


async def test_a_cache_write_that_crashes_is_logged(serve: Serve, scraper: Scraper) -> None:
    scraper.use_cache(PageCache(cast("KeyValue", _BrokenBucket()), timeout_s=2.0))
    with capture_logs() as logs:
        async with serve({"/a": _article}) as site:
            reply = await scraper.scrape(ScrapeRequest(urls=[site.url("/a")], timeout_ms=10_000))
            await scraper.close()
    assert len(reply.pages) == 1  # the reply never waits for, nor fails with, the cache write
    crashed = [log for log in logs if log["event"] == "cache write crashed"]
    assert len(crashed) == 1
    assert "the bucket broke" in str(crashed[0]["exc_info"])


async def test_cache_round_trip_and_miss(cache: PageCache) -> None:
    page = ScrapedPage(url="http://a.example/", final_url="http://a.example/", text="x", language="en")
    assert await cache.get("http://a.example/") is None
    await cache.put("http://a.example/", page)
    assert await cache.get("http://a.example/") == page


async def test_requests_for_a_url_being_read_join_that_read(serve: Serve, scraper: Scraper) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return await _article(request)

    async with serve({"/a": held}) as site:
        spellings = [site.url("/a"), f"HTTP://{site.base[7:]}/a#top", site.url("/a"), site.url("/a")]
        replies = [asyncio.create_task(scraper.scrape(ScrapeRequest(urls=[url]))) for url in spellings]
        await asyncio.wait_for(arrived.wait(), 10)  # every request has joined before the site answers
        release.set()
        pages = [(await reply).pages for reply in replies]
        assert site.hits["/a"] == 1
    assert [page.url for (page,) in pages] == spellings  # each as its caller wrote it
    assert len({page.text for (page,) in pages}) == 1


async def test_a_caller_with_more_time_reads_again_when_the_joined_read_times_out(
    serve: Serve, scraper: Scraper
) -> None:
    release = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        await release.wait()
        return await _article(request)

    async with serve({"/a": held}) as site:
        hasty = asyncio.create_task(scraper.scrape(ScrapeRequest(urls=[site.url("/a")], timeout_ms=300)))
        patient = asyncio.create_task(scraper.scrape(ScrapeRequest(urls=[site.url("/a")], timeout_ms=10_000)))
        assert [error.code for error in (await hasty).errors] == ["timeout"]
        release.set()
        assert [page.url for page in (await patient).pages] == [site.url("/a")]
        assert site.hits["/a"] == 2  # the shared read, then the patient caller's own
