"""PageFetcher against local aiohttp servers: redirects, limits, timeouts, types, retries."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import msgspec
import pytest
from aiohttp import web

from services.scraper.errors import (
    BodyTooLarge,
    ConnectFailed,
    FetchTimeout,
    HttpStatusError,
    InvalidUrl,
    TooManyRedirects,
    UnsupportedContentType,
)
from services.scraper.fetch import FetchedPage, PageFetcher
from services.scraper.settings import ScraperSettings

if TYPE_CHECKING:
    from tests.unit.scraper.conftest import Serve

HTML = "<html><head><title>t</title></head><body><p>Hello, world</p></body></html>"


async def _html(request: web.Request) -> web.Response:
    return web.Response(text=HTML, content_type="text/html")


async def _hop(request: web.Request) -> web.Response:
    """/hop/<n> redirects to /hop/<n-1>; /hop/0 is the page."""
    left = int(request.match_info["n"])
    if left == 0:
        return await _html(request)
    raise web.HTTPFound(f"/hop/{left - 1}")


async def test_fetches_html(serve: Serve, settings: ScraperSettings) -> None:
    async with serve({"/": _html}) as site, PageFetcher(settings) as fetcher:
        page = await fetcher.fetch(site.url("/"), timeout_s=5)
    assert page == FetchedPage(
        url=site.url("/"), final_url=site.url("/"), status=200, content_type="text/html", text=HTML
    )


async def test_sends_configured_user_agent(serve: Serve, settings: ScraperSettings) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=request.headers["User-Agent"], content_type="text/plain")

    settings = msgspec.structs.replace(settings, user_agent="TestBot/9 (+https://example.invalid/)")
    async with serve({"/": echo}) as site, PageFetcher(settings) as fetcher:
        page = await fetcher.fetch(site.url("/"), timeout_s=5)
    assert page.text == "TestBot/9 (+https://example.invalid/)"


@pytest.mark.parametrize("hops", [1, 5])
async def test_follows_redirect_chains(serve: Serve, settings: ScraperSettings, hops: int) -> None:
    async with serve({"/hop/{n}": _hop}) as site, PageFetcher(settings) as fetcher:
        page = await fetcher.fetch(site.url(f"/hop/{hops}"), timeout_s=5)
        assert page.final_url == site.url("/hop/0")
        assert page.url == site.url(f"/hop/{hops}")
        assert page.text == HTML
        assert site.hits.total() == hops + 1


async def test_more_than_max_redirects(serve: Serve, settings: ScraperSettings) -> None:
    async with serve({"/hop/{n}": _hop}) as site, PageFetcher(settings) as fetcher:
        with pytest.raises(TooManyRedirects, match="more than 5 redirects"):
            await fetcher.fetch(site.url("/hop/6"), timeout_s=5)
        assert site.hits.total() == 6  # the 6th redirect response is not followed


async def test_redirect_loop(serve: Serve, settings: ScraperSettings) -> None:
    async def ping(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/pong")

    async def pong(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/ping")

    async with serve({"/ping": ping, "/pong": pong}) as site, PageFetcher(settings) as fetcher:
        with pytest.raises(TooManyRedirects, match="loop") as caught:
            await fetcher.fetch(site.url("/ping"), timeout_s=5)
        assert caught.value.code == "too_many_redirects"
        assert site.hits.total() == 2


async def test_redirect_to_other_scheme_is_invalid(serve: Serve, settings: ScraperSettings) -> None:
    async def to_ftp(request: web.Request) -> web.Response:
        raise web.HTTPFound("ftp://127.0.0.1/file")

    async with serve({"/": to_ftp}) as site, PageFetcher(settings) as fetcher:
        with pytest.raises(InvalidUrl):
            await fetcher.fetch(site.url("/"), timeout_s=5)


async def test_redirect_to_a_malformed_url_is_invalid(serve: Serve, settings: ScraperSettings) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "http://[::1/unclosed"})

    async with serve({"/": broken}) as site, PageFetcher(settings) as fetcher:
        with pytest.raises(InvalidUrl, match="malformed"):
            await fetcher.fetch(site.url("/"), timeout_s=5)


async def test_huge_streamed_body_is_abandoned_at_the_cap(serve: Serve, settings: ScraperSettings) -> None:
    sent = 0
    stopped = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        chunk = b"<p>" + b"x" * 65_533
        try:
            while sent < 200 * 1024 * 1024:  # stop by itself long after the client should have
                await response.write(chunk)
                sent += len(chunk)
        finally:  # the client hung up: the write failed or the handler was cancelled
            stopped.set()
        return response

    settings = msgspec.structs.replace(settings, max_body_bytes=1024 * 1024)
    async with serve({"/": endless}) as site, PageFetcher(settings) as fetcher:
        with pytest.raises(BodyTooLarge) as caught:
            await fetcher.fetch(site.url("/"), timeout_s=10)
        assert caught.value.code == "too_large"
        await asyncio.wait_for(stopped.wait(), timeout=10)
    assert sent < 50 * 1024 * 1024


async def test_declared_length_over_the_cap_is_refused_unread(
    serve: Serve, settings: ScraperSettings
) -> None:
    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"a" * 300_000, content_type="text/plain")

    settings = msgspec.structs.replace(settings, max_body_bytes=100_000)
    async with serve({"/": big}) as site, PageFetcher(settings) as fetcher:
        with pytest.raises(BodyTooLarge, match="100000 bytes"):
            await fetcher.fetch(site.url("/"), timeout_s=5)


async def test_silent_server_hits_the_read_timeout(serve: Serve, settings: ScraperSettings) -> None:
    release = asyncio.Event()

    async def stalls(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        await response.write(b"<p>first bytes")
        await release.wait()
        return response

    settings = msgspec.structs.replace(settings, read_timeout_s=0.2)
    async with serve({"/": stalls}) as site, PageFetcher(settings) as fetcher:
        started = time.monotonic()
        try:
            with pytest.raises(FetchTimeout, match="silent"):
                await fetcher.fetch(site.url("/"), timeout_s=10)
        finally:
            release.set()
        assert time.monotonic() - started < 5


async def test_slow_server_and_the_callers_deadline(serve: Serve, settings: ScraperSettings) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return await _html(request)

    async with serve({"/": slow}) as site, PageFetcher(settings) as fetcher:
        started = time.monotonic()
        try:
            with pytest.raises(FetchTimeout) as caught:
                await fetcher.fetch(site.url("/"), timeout_s=0.3)
            elapsed = time.monotonic() - started
        finally:
            release.set()
    assert caught.value.code == "timeout"
    assert 0.29 <= elapsed < 2.0


async def test_never_answering_server(settings: ScraperSettings) -> None:
    accepted = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def accept_and_ignore(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        accepted.set()

    server = await asyncio.start_server(accept_and_ignore, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with PageFetcher(settings) as fetcher:
            started = time.monotonic()
            with pytest.raises(FetchTimeout):
                await fetcher.fetch(f"http://127.0.0.1:{port}/", timeout_s=0.3)
            elapsed = time.monotonic() - started
        assert accepted.is_set()
        assert 0.29 <= elapsed < 2.0
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("content_type", ["application/pdf", "image/png", "application/json"])
async def test_unsupported_content_type(serve: Serve, settings: ScraperSettings, content_type: str) -> None:
    async def other(request: web.Request) -> web.Response:
        return web.Response(body=b"%PDF-1.4", content_type=content_type)

    async with serve({"/": other}) as site, PageFetcher(settings) as fetcher:
        with pytest.raises(UnsupportedContentType, match=content_type) as caught:
            await fetcher.fetch(site.url("/"), timeout_s=5)
    assert caught.value.code == "unsupported_type"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/xhtml+xml", '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"/>'),
        ("text/plain", "just text"),
        ("TEXT/HTML", "<p>upper-case type</p>"),
    ],
)
async def test_supported_content_types(
    serve: Serve, settings: ScraperSettings, content_type: str, body: str
) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=body, headers={"Content-Type": f"{content_type}; charset=utf-8"})

    async with serve({"/": page}) as site, PageFetcher(settings) as fetcher:
        fetched = await fetcher.fetch(site.url("/"), timeout_s=5)
    assert fetched.content_type == content_type.lower()
    assert fetched.text == body


async def test_retries_503_then_succeeds(serve: Serve, settings: ScraperSettings) -> None:
    calls = 0

    async def flaky(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise web.HTTPServiceUnavailable()
        return await _html(request)

    async with serve({"/": flaky}) as site, PageFetcher(settings) as fetcher:
        page = await fetcher.fetch(site.url("/"), timeout_s=5)
        assert page.text == HTML
        assert site.hits["/"] == 3


async def test_gives_up_after_the_retries(serve: Serve, settings: ScraperSettings) -> None:
    async def down(request: web.Request) -> web.Response:
        raise web.HTTPBadGateway()

    async with serve({"/": down}) as site, PageFetcher(settings) as fetcher:
        with pytest.raises(HttpStatusError) as caught:
            await fetcher.fetch(site.url("/"), timeout_s=5)
        assert caught.value.status == 502
        assert site.hits["/"] == settings.retries + 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
async def test_no_retry_on_client_errors(serve: Serve, settings: ScraperSettings, status: int) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=status, text="no")

    async with serve({"/": refuse}) as site, PageFetcher(settings) as fetcher:
        with pytest.raises(HttpStatusError) as caught:
            await fetcher.fetch(site.url("/"), timeout_s=5)
        assert caught.value.status == status
        assert caught.value.code == "http_status"
        assert site.hits["/"] == 1


async def test_429_honours_retry_after(serve: Serve, settings: ScraperSettings) -> None:
    calls = 0

    async def limited(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise web.HTTPTooManyRequests(headers={"Retry-After": "0"})
        return await _html(request)

    async with serve({"/": limited}) as site, PageFetcher(settings) as fetcher:
        page = await fetcher.fetch(site.url("/"), timeout_s=5)
        assert page.status == 200
        assert site.hits["/"] == 2


async def test_429_retry_after_past_the_deadline_fails_at_once(
    serve: Serve, settings: ScraperSettings
) -> None:
    async def limited(request: web.Request) -> web.Response:
        raise web.HTTPTooManyRequests(headers={"Retry-After": "3"})

    async with serve({"/": limited}) as site, PageFetcher(settings) as fetcher:
        started = time.monotonic()
        with pytest.raises(HttpStatusError) as caught:
            await fetcher.fetch(site.url("/"), timeout_s=1.0)
        assert time.monotonic() - started < 0.9
        assert caught.value.status == 429
        assert site.hits["/"] == 1


async def test_backoff_never_overruns_the_deadline(serve: Serve, settings: ScraperSettings) -> None:
    async def down(request: web.Request) -> web.Response:
        raise web.HTTPServiceUnavailable()

    settings = msgspec.structs.replace(settings, retries=10, retry_backoff_s=0.1)
    async with serve({"/": down}) as site, PageFetcher(settings) as fetcher:
        started = time.monotonic()
        with pytest.raises(HttpStatusError):
            await fetcher.fetch(site.url("/"), timeout_s=0.5)
        assert time.monotonic() - started < 0.6
        assert 2 <= site.hits["/"] <= 4  # 0.1 + 0.2 s of back-off fit, 0.4 more does not


async def test_dead_host_is_a_quick_connect_error(settings: ScraperSettings, closed_port: int) -> None:
    async with PageFetcher(settings) as fetcher:
        started = time.monotonic()
        with pytest.raises(ConnectFailed) as caught:
            await fetcher.fetch(f"http://127.0.0.1:{closed_port}/", timeout_s=5)
        assert time.monotonic() - started < 1.0
    assert caught.value.code == "connect"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "not a url", "http://", "http://127.0.0.1:99999/"])
async def test_invalid_urls(settings: ScraperSettings, url: str) -> None:
    async with PageFetcher(settings) as fetcher:
        with pytest.raises(InvalidUrl) as caught:
            await fetcher.fetch(url, timeout_s=5)
    assert caught.value.code == "invalid_url"
