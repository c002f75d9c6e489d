"""The Litestar application: routes, dependencies, errors, and the bus lifespan.

Every area of the API is a module of `services/gateway/api/` whose handlers
are module-level functions and whose `router(settings)` mounts them with the
body limit they need; what handlers share (the chat service, the document
and job doors, metrics, settings) is injected by name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
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
from services.gateway.api import documents as documents_api
from services.gateway.api import health as health_api
from services.gateway.api import jobs as jobs_api
from services.gateway.api import search as search_api
from services.gateway.api import web as web_api
from services.gateway.auth import ApiKeys
from services.gateway.bus import register_bus_handlers
from services.gateway.chat import ChatService
from services.gateway.documents import DocumentService
from services.gateway.errors import RateLimited, error_body, http_status
from services.gateway.jobs import JobDoor
from services.gateway.metrics import GatewayMetrics
from services.gateway.middleware import REQUEST_ID_HEADER, request_middleware
from services.gateway.protection import RateLimitGuard
from services.gateway.settings import GatewaySettings

__all__ = ["create_app"]

_log = get_logger(__name__)


def create_app(settings: GatewaySettings, *, broker: NatsBroker | None = None) -> Litestar:
    """Build the gateway; the broker connects when the app starts and drains when it stops."""
    bus = broker or make_broker(settings.nats_url, "gateway")
    chat_service = ChatService(bus, settings)
    job_door = JobDoor.from_env(bus)
    metrics = GatewayMetrics()
    register_bus_handlers(bus, chat_service)
    keys = ApiKeys.from_settings(settings)
    if not keys.enabled:
        _log.warning("no API keys configured: /v1 is open; bind to loopback only")
    rate_limit = RateLimitGuard(settings, metrics)
    shared = {
        "chat_service": chat_service,
        "documents": DocumentService(bus, timeout_s=settings.documents_timeout_s),
        "job_door": job_door,
        "metrics": metrics,
        "broker": bus,
        "settings": settings,
        "rate_limit": rate_limit,
    }
    v1 = Router(
        "/v1",
        route_handlers=[
            *(area.router(settings) for area in (chat_api, chat_ws_api, completions_api)),
            *(area.router(settings) for area in (documents_api, search_api)),
            jobs_api.router(job_door.settings),
        ],
        guards=[keys.guard, rate_limit],
    )
    return Litestar(
        route_handlers=[v1, health_api.router(settings), web_api.router(settings)],
        dependencies={name: _provide(value) for name, value in shared.items()},
        exception_handlers={ServiceError: _service_error(metrics), HTTPException: _http_error},
        middleware=[DefineMiddleware(request_middleware, metrics=metrics)],
        cors_config=_cors(settings),
        lifespan=[_bus_lifespan(bus, rate_limit)],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="GenAI services gateway", version="0.1.0", path="/schema"),
    )


def _provide(value: object) -> Provide:
    return Provide(lambda: value, sync_to_thread=False)


def _bus_lifespan(bus: NatsBroker, rate_limit: RateLimitGuard) -> Callable[[Litestar], Any]:
    @asynccontextmanager
    async def bus_lifespan(_: Litestar) -> AsyncIterator[None]:
        await bus.start()
        try:
            await rate_limit.start(bus)
            yield
        finally:
            await bus.stop()

    return bus_lifespan


def _service_error(metrics: GatewayMetrics) -> Callable[[Request, ServiceError], Response[dict[str, str]]]:  # type: ignore[type-arg]
    """Every route's `ServiceError` (the OpenAI routes have their own body): the table's status."""

    def service_error(request: Request, exc: ServiceError) -> Response[dict[str, str]]:  # type: ignore[type-arg]
        status = http_status(exc.code)
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
        if status >= 500:
            metrics.count_failure(exc)
            _log.warning("request failed", path=request.url.path, code=exc.code, detail=exc.detail)
        return Response(error_body(exc), status_code=status, headers=headers)

    return service_error


def _cors(settings: GatewaySettings) -> CORSConfig | None:
    if not settings.cors_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", REQUEST_ID_HEADER],
        expose_headers=[REQUEST_ID_HEADER, "Retry-After"],
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
