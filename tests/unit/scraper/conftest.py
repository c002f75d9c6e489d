"""Local test web servers for the scraper's fetch tests (127.0.0.1 only)."""

from __future__ import annotations

import contextlib
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.scraper.settings import ScraperSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Serve = Callable[[Mapping[str, Handler]], contextlib.AbstractAsyncContextManager["Site"]]


class Site:
    """A running local site: its base URL and the requests it received per path."""

    def __init__(self, base: str, hits: Counter[str]) -> None:
        self.base = base
        self.port = int(base.rsplit(":", 1)[1])
        self.hits = hits

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on this site."""
        return f"{self.base}{path}"

    @property
    def total_hits(self) -> int:
        """Requests received, all paths together."""
        return sum(self.hits.values())


@contextlib.asynccontextmanager
async def _serve(routes: Mapping[str, Handler]) -> AsyncIterator[Site]:
    hits: Counter[str] = Counter()

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        hits[request.path] += 1
        return await handler(request)

    app = web.Application(middlewares=[count])
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Site(f"http://127.0.0.1:{server.port}", hits)
    finally:
        await server.close()


@pytest.fixture
def serve() -> Serve:
    """Start a local aiohttp site with the given routes: ``async with serve({...}) as site``."""
    return _serve


@pytest.fixture
def settings() -> ScraperSettings:
    """Test settings: 127.0.0.1 allowed, robots off, short back-off."""
    return ScraperSettings(allow_hosts=("127.0.0.1",), respect_robots=False, retry_backoff_s=0.01)


@pytest.fixture
def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
