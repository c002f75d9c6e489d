"""The Litestar application: routes, dependencies, errors, and the bus lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream.nats import NatsBroker
from litestar import Litestar, Request, Response, Router
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from runtime.bus import make_broker
from runtime.errors import ServiceError
from runtime.logging import get_logger
from services.gateway.api import chat as chat_api
from services.gateway.api import health as health_api
from services.gateway.auth import ApiKeys
from services.gateway.bus import register_bus_handlers
from services.gateway.chat import ChatService
from services.gateway.errors import GatewayError
from services.gateway.settings import GatewaySettings

__all__ = ["create_app"]

_log = get_logger(__name__)


def create_app(settings: GatewaySettings, *, broker: NatsBroker | None = None) -> Litestar:
    """Build the gateway; the broker connects when the app starts and drains when it stops."""
    bus = broker or make_broker(settings.nats_url, "gateway")
    chat_service = ChatService(bus, settings)
    register_bus_handlers(bus, chat_service)
    keys = ApiKeys.from_settings(settings)
    if not keys.enabled:
        _log.warning("no API keys configured: /v1 is open; bind to loopback only")

    @asynccontextmanager
    async def bus_lifespan(_: Litestar) -> AsyncIterator[None]:
        await bus.start()
        try:
            yield
        finally:
            await bus.stop()

    v1 = Router("/v1", route_handlers=[chat_api.chat], guards=[keys.guard])
    return Litestar(
        route_handlers=[v1, health_api.healthz, health_api.readyz],
        dependencies={
            "chat_service": Provide(lambda: chat_service, sync_to_thread=False),
            "broker": Provide(lambda: bus, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
        },
        exception_handlers={ServiceError: _service_error},
        lifespan=[bus_lifespan],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="GenAI services gateway", version="0.1.0", path="/schema"),
    )


def _service_error(request: Request, exc: ServiceError) -> Response[dict[str, str]]:  # type: ignore[type-arg]
    status = exc.status_code if isinstance(exc, GatewayError) else 500
    if status >= 500:
        _log.warning("request failed", path=request.url.path, code=exc.code, detail=exc.detail)
    return Response({"code": exc.code, "detail": exc.detail}, status_code=status)
