"""`/healthz` (the gateway runs) and `/readyz` (NATS, Triton and every service answer)."""

from __future__ import annotations

import asyncio

import msgspec
from faststream.nats import NatsBroker
from litestar import Response, Router, get

from proto.health import HealthReply, HealthRequest
from proto.subjects import SERVICES, health_subject
from runtime.bus import BusError, request
from services.gateway.settings import GatewaySettings

__all__ = ["Readiness", "healthz", "readyz", "router"]


class Readiness(msgspec.Struct, kw_only=True):
    """What is ready, and the names of what is missing."""

    ready: bool
    checks: dict[str, bool]
    missing: list[str]


def router(settings: GatewaySettings) -> Router:
    """`/healthz` and `/readyz`, open to all (no API key, no rate limit)."""
    return Router("/", route_handlers=[healthz, readyz], request_max_body_size=settings.max_body_bytes)


@get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """The gateway process is up."""
    return {"status": "ok"}


@get("/readyz", summary="Readiness")
async def readyz(broker: NatsBroker, settings: GatewaySettings) -> Response[Readiness]:
    """200 when NATS, Triton and every service answer; 503 naming the missing ones."""
    checks: dict[str, bool] = {"nats": _connected(broker)}
    if checks["nats"]:
        replies = await asyncio.gather(
            *(_probe(broker, service, settings.health_timeout_s) for service in SERVICES)
        )
        for service, reply in zip(SERVICES, replies, strict=True):
            checks[service] = reply is not None and reply.ready
            if reply is not None:
                checks.update(reply.checks)  # e.g. triton, triton.embed
    else:
        checks.update({service: False for service in SERVICES})
    missing = sorted(name for name, ok in checks.items() if not ok)
    body = Readiness(ready=not missing, checks=checks, missing=missing)
    return Response(body, status_code=200 if not missing else 503)


def _connected(broker: NatsBroker) -> bool:
    try:
        return bool(broker.connection.is_connected)
    except (AttributeError, RuntimeError):  # not connected yet
        return False


async def _probe(broker: NatsBroker, service: str, timeout_s: float) -> HealthReply | None:
    """The service's readiness, or None when it does not answer (`/readyz` names it missing)."""
    try:
        return await request(
            broker,
            health_subject(service),
            HealthRequest(),
            HealthReply,
            service=service,
            timeout_s=timeout_s,
        )
    except BusError:
        return None
