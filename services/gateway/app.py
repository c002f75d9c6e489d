"""The Litestar application: routes, dependencies, errors, and the bus lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from faststream.nats import NatsBroker
from litestar import Litestar, Request, Response, Router
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig

from runtime.bus import make_broker
from runtime.errors import ServiceError
from runtime.logging import get_logger
from services.gateway.api import chat as chat_api
from services.gateway.api import chat_ws as chat_ws_api
from services.gateway.api import completions as completions_api
from services.gateway.api import health as health_api
from services.gateway.api import web as web_api
from services.gateway.api.documents import document_routes
from services.gateway.api.jobs import jobs_router
from services.gateway.auth import ApiKeys
from services.gateway.bus import register_bus_handlers
from services.gateway.chat import ChatService
from services.gateway.documents import DocumentService
from services.gateway.errors import GatewayError, RateLimited
from services.gateway.jobs import JobDoor
from services.gateway.metrics import GatewayMetrics
from services.gateway.middleware import REQUEST_ID_HEADER, request_middleware
from services.gateway.protection import RateLimitGuard
from services.gateway.settings import GatewaySettings

__all__ = ["create_app"]

_log = get_logger(__name__)
_UPSTREAMS = ("inference", "rag", "scraper")


def create_app(settings: GatewaySettings, *, broker: NatsBroker | None = None) -> Litestar:
    """Build the gateway; the broker connects when the app starts and drains when it stops."""
    bus = broker or make_broker(settings.nats_url, "gateway")
    chat_service = ChatService(bus, settings)
    documents = DocumentService(bus, timeout_s=settings.documents_timeout_s)
    metrics = GatewayMetrics()
    register_bus_handlers(bus, chat_service)
    keys = ApiKeys.from_settings(settings)
    if not keys.enabled:
        _log.warning("no API keys configured: /v1 is open; bind to loopback only")
    rate_limit = RateLimitGuard(settings, metrics)

    @asynccontextmanager
    async def bus_lifespan(_: Litestar) -> AsyncIterator[None]:
        await bus.start()
        try:
            await rate_limit.start(bus)
            yield
        finally:
            await bus.stop()

    def service_error(request: Request, exc: ServiceError) -> Response[dict[str, str]]:  # type: ignore[type-arg]
        status = exc.status_code if isinstance(exc, GatewayError) else 500
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
        if status >= 500:
            upstream = next((name for name in _UPSTREAMS if exc.detail.startswith(name)), "nats")
            metrics.upstream_errors.labels(service=upstream).inc()
            _log.warning("request failed", path=request.url.path, code=exc.code, detail=exc.detail)
        return Response({"code": exc.code, "detail": exc.detail}, status_code=status, headers=headers)

    v1 = Router(
        "/v1",
        route_handlers=[
            chat_api.chat,
            chat_ws_api.chat_ws,
            completions_api.chat_completions,
            completions_api.list_models,
            completions_api.get_model,
            *document_routes(settings),
            jobs_router(JobDoor.from_env(bus)),
        ],
        guards=[keys.guard, rate_limit],
    )
    cors = None
    if settings.cors_origins:
        cors = CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER, "Retry-After"],
        )
    return Litestar(
        route_handlers=[
            v1,
            health_api.healthz,
            health_api.readyz,
            web_api.metrics,
            *web_api.web_routes(),
        ],
        dependencies={
            "chat_service": Provide(lambda: chat_service, sync_to_thread=False),
            "documents": Provide(lambda: documents, sync_to_thread=False),
            "metrics": Provide(lambda: metrics, sync_to_thread=False),
            "broker": Provide(lambda: bus, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "rate_limit": Provide(lambda: rate_limit, sync_to_thread=False),
        },
        exception_handlers={ServiceError: service_error, HTTPException: _http_error},
        middleware=[DefineMiddleware(request_middleware, metrics=metrics)],
        cors_config=cors,
        lifespan=[bus_lifespan],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="GenAI services gateway", version="0.1.0", path="/schema"),
    )


def _http_error(request: Request, exc: HTTPException) -> Response[dict[str, Any]]:  # type: ignore[type-arg]
    """Litestar's own errors, with a reason for a body over the route's limit."""
    detail: Any = exc.detail
    if exc.status_code == 413:
        limit = request.route_handler.resolve_request_max_body_size()
        detail = f"request body over the limit of {limit} bytes for {request.url.path}"
    body: dict[str, Any] = {"status_code": exc.status_code, "detail": detail}
    if exc.extra:
        body["extra"] = exc.extra
    return Response(body, status_code=exc.status_code, headers=exc.headers)
