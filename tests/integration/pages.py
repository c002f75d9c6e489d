"""A local web server of given pages, for tests in which the scraper reads a link."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from deploy.cluster import free_port

__all__ = ["serve_pages"]


@asynccontextmanager
async def serve_pages(pages: dict[str, str]) -> AsyncIterator[str]:
    """Serve `{path: html}` from a local aiohttp server; yields its base URL."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=pages[request.path], content_type="text/html")

    app = web.Application()
    for path in pages:
        app.router.add_get(path, page)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
