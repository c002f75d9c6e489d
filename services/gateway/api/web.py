"""The web chat page at `/` (plain HTML and JavaScript, no build step) and `/metrics`."""

from __future__ import annotations

from pathlib import Path

from litestar import Response, Router, get
from litestar.handlers import HTTPRouteHandler
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from services.gateway.metrics import CONTENT_TYPE, GatewayMetrics
from services.gateway.settings import GatewaySettings

__all__ = ["STATIC_DIR", "metrics", "router"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# The page loads only its own script and style and talks only to this gateway:
# whatever a page, a document or an answer puts in the chat cannot load or run anything else.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@get("/metrics", summary="Prometheus metrics", include_in_schema=False, sync_to_thread=False)
def metrics(metrics: GatewayMetrics) -> Response[bytes]:
    """The process's metrics in the Prometheus text format."""
    return Response(metrics.render(), media_type=CONTENT_TYPE)


def router(settings: GatewaySettings) -> Router:
    """`/` (the page), `/static/*` (its script and style) and `/metrics`."""
    page = (STATIC_DIR / "index.html").read_bytes()

    @get("/", include_in_schema=False, sync_to_thread=False)
    def index() -> Response[bytes]:
        return Response(page, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    static: HTTPRouteHandler | ControllerRouterHandler = create_static_files_router(
        path="/static", directories=[STATIC_DIR], include_in_schema=False
    )
    return Router("/", route_handlers=[index, static, metrics], request_max_body_size=settings.max_body_bytes)
