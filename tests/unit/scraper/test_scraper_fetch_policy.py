"""PageFetcher politeness: robots.txt and the global and per-host concurrency bounds."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import msgspec
import pytest
from aiohttp import web
from yarl import URL

from services.scraper.errors import RobotsDisallowed
from services.scraper.fetch import PageFetcher
from services.scraper.robots import RobotsCache, RobotsFile
from services.scraper.settings import ScraperSettings

if TYPE_CHECKING:
    from tests.unit.scraper.conftest import Handler, Serve


ROBOTS = """
User-agent: OtherBot
Disallow: /

User-agent: *
Disallow: /private
Disallow: /no-bots
"""
# A group naming our agent replaces the "*" group for us (robots.txt semantics).
OUR_GROUP = """
User-agent: *
Disallow: /

User-agent: GenAIServicesScraper
Disallow: /private
"""


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=f"<p>{request.path}</p>", content_type="text/html")


def _robots(status: int, text: str = ROBOTS) -> Handler:
    async def robots(request: web.Request) -> web.Response:
        return web.Response(status=status, text=text, content_type="text/plain")

    return robots


@pytest.fixture
def polite(settings: ScraperSettings) -> ScraperSettings:
    """Test settings with robots.txt honoured."""
    return msgspec.structs.replace(settings, respect_robots=True)


async def test_robots_disallow_and_cache(serve: Serve, polite: ScraperSettings) -> None:
    routes = {"/robots.txt": _robots(200), "/{tail:.*}": _page}
    async with serve(routes) as site, PageFetcher(polite) as fetcher:
        for path in ("/private", "/private/deeper", "/no-bots/x"):
            with pytest.raises(RobotsDisallowed) as caught:
                await fetcher.fetch(site.url(path), timeout_s=5)
            assert caught.value.code == "robots"
        page = await fetcher.fetch(site.url("/public"), timeout_s=5)
        assert page.text == "<p>/public</p>"
        assert site.hits["/robots.txt"] == 1
        assert site.hits.total() == 2  # robots.txt once, /public once; refused pages never asked


async def test_concurrent_first_fetches_share_one_robots_load(serve: Serve, polite: ScraperSettings) -> None:
    routes = {"/robots.txt": _robots(200), "/{tail:.*}": _page}
    async with serve(routes) as site, PageFetcher(polite) as fetcher:
        pages = await asyncio.gather(*(fetcher.fetch(site.url(f"/p{i}"), timeout_s=5) for i in range(6)))
        assert [p.text for p in pages] == [f"<p>/p{i}</p>" for i in range(6)]
        assert site.hits["/robots.txt"] == 1


async def test_robots_for_another_agent_does_not_apply(serve: Serve, polite: ScraperSettings) -> None:
    text = "User-agent: OtherBot\nDisallow: /\n"
    async with (
        serve({"/robots.txt": _robots(200, text), "/x": _page}) as site,
        PageFetcher(polite) as fetcher,
    ):
        page = await fetcher.fetch(site.url("/x"), timeout_s=5)
    assert page.status == 200


@pytest.mark.parametrize(("status", "allowed"), [(404, True), (403, True), (500, False), (503, False)])
async def test_robots_status_convention(
    serve: Serve, polite: ScraperSettings, status: int, allowed: bool
) -> None:
    async with (
        serve({"/robots.txt": _robots(status, "User-agent: *\nDisallow: /"), "/x": _page}) as site,
        PageFetcher(polite) as fetcher,
    ):
        if allowed:
            assert (await fetcher.fetch(site.url("/x"), timeout_s=5)).status == 200
        else:
            with pytest.raises(RobotsDisallowed):
                await fetcher.fetch(site.url("/x"), timeout_s=5)
            assert site.hits["/x"] == 0


async def test_unreachable_robots_means_allowed(serve: Serve, polite: ScraperSettings) -> None:
    async def robots_redirects_to_a_refused_host(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://[::1]:9/robots.txt")

    routes = {"/robots.txt": robots_redirects_to_a_refused_host, "/x": _page}
    async with serve(routes) as site, PageFetcher(polite) as fetcher:
        assert (await fetcher.fetch(site.url("/x"), timeout_s=5)).status == 200
        assert (await fetcher.fetch(site.url("/x"), timeout_s=5)).status == 200
        assert site.hits["/robots.txt"] == 2  # a failed load is not cached


async def test_robots_switched_off(serve: Serve, settings: ScraperSettings) -> None:
    routes = {"/robots.txt": _robots(200, "User-agent: *\nDisallow: /"), "/x": _page}
    async with serve(routes) as site, PageFetcher(settings) as fetcher:
        assert (await fetcher.fetch(site.url("/x"), timeout_s=5)).status == 200
        assert site.hits["/robots.txt"] == 0


@pytest.mark.parametrize(
    ("max_concurrency", "per_host_concurrency", "bound"),
    [(8, 2, 2), (1, 4, 1), (3, 3, 3)],
    ids=["per-host", "global", "both"],
)
async def test_concurrency_bounds_hold_at_the_server(
    serve: Serve, settings: ScraperSettings, max_concurrency: int, per_host_concurrency: int, bound: int
) -> None:
    in_flight = 0
    most = 0
    full = asyncio.Event()  # `bound` requests are being served at once
    over = asyncio.Event()  # more than `bound` at once: the bound is broken
    release = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == bound:
            full.set()
        if in_flight > bound:
            over.set()
        try:
            await release.wait()
            return await _page(request)
        finally:
            in_flight -= 1

    settings = msgspec.structs.replace(
        settings, max_concurrency=max_concurrency, per_host_concurrency=per_host_concurrency
    )
    async with serve({"/{tail:.*}": held}) as site, PageFetcher(settings) as fetcher:
        fetches = [asyncio.create_task(fetcher.fetch(site.url(f"/{i}"), timeout_s=10)) for i in range(8)]
        try:
            await asyncio.wait_for(full.wait(), timeout=5)
            # Proving that no more arrive needs a bound on waiting: on loopback a request
            # the fetcher let through would reach the server well within this.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(over.wait(), timeout=0.3)
        finally:
            release.set()
        pages = await asyncio.gather(*fetches)
    assert [p.text for p in pages] == [f"<p>/{i}</p>" for i in range(8)]
    assert most == bound


async def test_robots_cache_expiry_and_size() -> None:
    loads: list[str] = []

    async def load(origin: URL) -> RobotsFile:
        loads.append(str(origin))
        return RobotsFile(200, "User-agent: *\nDisallow: /private\n")

    a, b = URL("http://a.example/private"), URL("http://b.example/public")
    fresh = RobotsCache(user_agent="GenAIServicesScraper/0.1", ttl_s=3600, max_entries=1)
    assert not await fresh.allowed(a, load)
    assert not await fresh.allowed(a, load)
    assert await fresh.allowed(b, load)  # evicts a.example (max_entries=1)
    assert not await fresh.allowed(a, load)
    assert loads == [
        "http://a.example/robots.txt",
        "http://b.example/robots.txt",
        "http://a.example/robots.txt",
    ]

    loads.clear()
    expired = RobotsCache(user_agent="GenAIServicesScraper/0.1", ttl_s=-1, max_entries=10)
    await expired.allowed(a, load)
    await expired.allowed(a, load)
    assert len(loads) == 2
