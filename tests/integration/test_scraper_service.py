"""The scraper service as a process on a real nats-server, reading pages from a local site.

The module runs its own nats-server (not the session's), so no other scraper replica in
the same queue group can answer for the one under test.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import nats
import pytest
from aiohttp import web
from nats.aio.client import Client as NatsClient

from deploy.cluster import NatsServer, ServiceProcess, free_port
from proto.common import ErrorReply, decode, encode
from proto.context import ScrapeReply, ScrapeRequest
from proto.subjects import SCRAPE, SCRAPE_CACHE_BUCKET
from services.scraper.urls import normalise_url

pytestmark = pytest.mark.integration

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY_BYTES = 300_000
ARTICLE = """<!doctype html><html lang="en"><head><title>Night ferry</title></head><body>
<nav><a href="/">Home</a> | <a href="/news">News</a></nav><article><h1>Night ferry</h1>
<p>The night ferry to the islands will run again from May, the operator said on Monday, after
two years in which the crossing was only made in daylight because of a shortage of crew.</p>
<p>Tickets go on sale next week; cabins must be booked in advance and cost forty euros.</p>
</article><footer>Copyright Example Harbour Press</footer></body></html>"""
BROKEN = """<html><head><title>Broken page</title><body><div class=main><p>Unclosed paragraph about the
lighthouse keeper who kept a diary for thirty years, writing down every ship that passed the cape
<p>Another unclosed paragraph: the diary is now kept in the town museum <b><i>and can be read
on request</b></i> by anyone who asks the librarian at the front desk.<table><tr><td>stray cell
</div></span></html></html>"""


class Site:
    """The local web site the service reads, with its request count per path."""

    def __init__(self, base: str, hits: Counter[str], release: asyncio.Event) -> None:
        self.base = base
        self.hits = hits
        self.release = release

    def url(self, path: str) -> str:
        """Absolute URL of ``path``."""
        return f"{self.base}{path}"


def _routes(release: asyncio.Event) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.get("/good/{name}")
    async def good(_: web.Request) -> web.Response:
        return web.Response(text=ARTICLE, content_type="text/html")

    @routes.get("/broken")
    async def broken(_: web.Request) -> web.Response:
        return web.Response(text=BROKEN, content_type="text/html")

    @routes.get("/missing")
    async def missing(_: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    @routes.get("/binary")
    async def binary(_: web.Request) -> web.Response:
        return web.Response(body=b"%PDF-1.7\n", content_type="application/pdf")

    @routes.get("/never")
    async def never(request: web.Request) -> web.Response:
        await release.wait()  # answers only when the module ends
        return web.Response(text=ARTICLE, content_type="text/html")

    @routes.get("/huge")
    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        response.enable_chunked_encoding()  # no Content-Length: the cap must stop the stream
        await response.prepare(request)
        chunk = b"<p>" + b"x" * 65_536 + b"</p>"
        for _ in range(3 * MAX_BODY_BYTES // len(chunk)):
            await response.write(chunk)
        return response

    return routes


@pytest.fixture(scope="module")
async def site() -> AsyncIterator[Site]:
    hits: Counter[str] = Counter()
    release = asyncio.Event()

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        hits[request.path] += 1
        return await handler(request)

    app = web.Application(middlewares=[count])
    app.add_routes(_routes(release))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield Site(f"http://127.0.0.1:{port}", hits, release)
    release.set()
    await runner.cleanup()


@pytest.fixture(scope="module")
def bus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("scraper-nats"))
    server.start()
    yield server
    server.stop()


def _scraper_env(nats_url: str, **extra: str) -> dict[str, str]:
    return {
        "SCRAPER_NATS_URL": nats_url,
        "SCRAPER_ALLOW_HOSTS": "127.0.0.1,localhost",
        "SCRAPER_RESPECT_ROBOTS": "false",
        "SCRAPER_EXTRACT_WORKERS": "1",
        "SCRAPER_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        **extra,
    }


@pytest.fixture(scope="module")
async def scraper(
    bus_server: NatsServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServiceProcess]:
    service = ServiceProcess("scraper", _scraper_env(bus_server.url), tmp_path_factory.mktemp("scraper"))
    service.start()
    try:
        await service.wait_healthy(bus_server.url)
        yield service
    finally:
        service.stop()


@pytest.fixture
async def bus(bus_server: NatsServer, scraper: ServiceProcess) -> AsyncIterator[NatsClient]:
    client = await nats.connect(bus_server.url)
    yield client
    await client.close()


async def _scrape(bus: NatsClient, request: ScrapeRequest) -> ScrapeReply:
    """Ask within the request's own deadline: a late reply fails the test."""
    message = await bus.request(SCRAPE, encode(request), timeout=request.timeout_ms / 1000)
    reply: ScrapeReply | ErrorReply = decode(message.data, ScrapeReply | ErrorReply)
    assert isinstance(reply, ScrapeReply), reply
    return reply


async def test_every_kind_of_page_gets_a_page_or_its_own_error(bus: NatsClient, site: Site) -> None:
    paths = ["/good/every", "/broken", "/missing", "/binary", "/huge", "/never"]
    request = ScrapeRequest(urls=[site.url(p) for p in paths], timeout_ms=3_000)
    started = time.monotonic()
    reply = await _scrape(bus, request)
    assert time.monotonic() - started < 3.0
    pages = {page.url: page for page in reply.pages}
    assert set(pages) == {site.url("/good/every"), site.url("/broken")}
    assert pages[site.url("/good/every")].title == "Night ferry"
    assert "forty euros" in pages[site.url("/good/every")].text
    assert "Copyright" not in pages[site.url("/good/every")].text
    assert "lighthouse keeper" in pages[site.url("/broken")].text
    assert {error.url: error.code for error in reply.errors} == {
        site.url("/missing"): "http_status",
        site.url("/binary"): "unsupported_type",
        site.url("/huge"): "too_large",
        site.url("/never"): "timeout",
    }


async def test_the_deadline_holds_when_the_server_never_answers(bus: NatsClient, site: Site) -> None:
    started = time.monotonic()
    reply = await _scrape(bus, ScrapeRequest(prompt=f"read {site.url('/never')} please", timeout_ms=700))
    assert time.monotonic() - started < 0.7
    assert [(error.url, error.code) for error in reply.errors] == [(site.url("/never"), "timeout")]


async def test_malformed_urls_are_per_url_errors(bus: NatsClient, site: Site) -> None:
    urls = ["http://[::1", "ftp://example.invalid/x", site.url("/good/malformed")]
    reply = await _scrape(bus, ScrapeRequest(urls=urls, timeout_ms=5_000))
    assert [page.url for page in reply.pages] == [site.url("/good/malformed")]
    assert {error.url: error.code for error in reply.errors} == {
        "http://[::1": "invalid_url",
        "ftp://example.invalid/x": "invalid_url",
    }


async def _wait_cached(bus: NatsClient, url: str) -> None:
    """Wait for the service's cache write of ``url`` (it happens after the reply)."""
    bucket = await bus.jetstream().key_value(SCRAPE_CACHE_BUCKET)
    watcher = await bucket.watch(hashlib.sha256(normalise_url(url).encode()).hexdigest())
    try:
        while True:
            entry = await watcher.updates(timeout=10)  # type: ignore[no-untyped-call]
            if entry is not None and entry.value:
                return
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]


async def test_a_cache_hit_makes_no_request(bus: NatsClient, site: Site) -> None:
    url = site.url(f"/good/{uuid.uuid4().hex}")
    path = url.removeprefix(site.base)
    first = await _scrape(bus, ScrapeRequest(urls=[url], timeout_ms=5_000))
    await _wait_cached(bus, url)
    second = await _scrape(bus, ScrapeRequest(prompt=f"again: {url}.", timeout_ms=5_000))
    assert site.hits[path] == 1
    assert [page.cached for page in first.pages] == [False]
    assert [page.cached for page in second.pages] == [True]
    assert second.pages[0].text == first.pages[0].text


async def test_failures_are_not_cached(bus: NatsClient, site: Site) -> None:
    before = site.hits["/missing"]
    for _ in range(2):
        reply = await _scrape(bus, ScrapeRequest(urls=[site.url("/missing")], timeout_ms=5_000))
        assert [error.code for error in reply.errors] == ["http_status"]
    assert site.hits["/missing"] == before + 2


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type": "scrape.request", "urls": "http://a.example/", "timeout_ms": 1000}',
        b'{"type": "scrape.request", "prompt": 42}',
        b'{"type": "scrape.request", "timeout_ms": "soon"}',
        b'{"type": "scrape.request", "urls": ["http://a.example/"], "timeout_ms": 0}',
        b"{not json",
    ],
)
async def test_bad_requests_get_an_error_reply(bus: NatsClient, site: Site, payload: bytes) -> None:
    message = await bus.request(SCRAPE, payload, timeout=5)
    reply: ScrapeReply | ErrorReply = decode(message.data, ScrapeReply | ErrorReply)
    assert isinstance(reply, ErrorReply), reply
    assert reply.code == "bad_request" and reply.service == "scraper" and reply.detail
    # ... and the service keeps working.
    ok = await _scrape(bus, ScrapeRequest(urls=[site.url("/good/after-bad")], timeout_ms=5_000))
    assert len(ok.pages) == 1


async def test_nats_going_away_and_back(bus_server: NatsServer, scraper: ServiceProcess, site: Site) -> None:
    bus_server.stop()
    bus_server.start()  # same port, same JetStream store
    await scraper.wait_healthy(bus_server.url, timeout_s=30)
    client = await nats.connect(bus_server.url)
    try:
        reply = await _scrape(client, ScrapeRequest(urls=[site.url("/good/after-restart")], timeout_ms=5_000))
    finally:
        await client.close()
    assert [page.title for page in reply.pages] == ["Night ferry"]
    assert scraper.process.poll() is None


async def test_loopback_is_refused_by_default(site: Site, tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats")
    server.start()
    env = _scraper_env(server.url)
    del env["SCRAPER_ALLOW_HOSTS"]
    service = ServiceProcess("scraper", env, tmp_path)
    service.start()
    try:
        await service.wait_healthy(server.url)
        client = await nats.connect(server.url)
        try:
            host_name_url = site.url("/good/refused-by-name").replace("127.0.0.1", "localhost")
            urls = [site.url("/good/refused"), host_name_url]
            reply = await _scrape(client, ScrapeRequest(urls=urls, timeout_ms=5_000))
        finally:
            await client.close()
    finally:
        service.stop()
        server.stop()
    assert reply.pages == []
    assert [error.code for error in reply.errors] == ["refused", "refused"]
    assert site.hits["/good/refused"] == site.hits["/good/refused-by-name"] == 0
