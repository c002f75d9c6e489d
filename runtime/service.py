"""Start-up and graceful shutdown of a bus service, and its health subject."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from faststream import FastStream
from faststream.nats import NatsBroker

from proto.health import HealthReply, HealthRequest
from proto.subjects import health_subject
from runtime.bus import queue_group

__all__ = ["HealthCheck", "add_health", "run_service"]

# Names a dependency and says whether it is ready, e.g. {"triton": True}.
HealthCheck = Callable[[], Awaitable[dict[str, bool]]]


def add_health(broker: NatsBroker, service: str, check: HealthCheck | None = None) -> None:
    """Answer `HealthRequest` on `health.<service>` with this replica's readiness."""

    @broker.subscriber(health_subject(service), queue_group(service), title=f"{service}.health")
    async def health(request: HealthRequest) -> HealthReply:
        checks = await check() if check is not None else {}
        return HealthReply(service=service, ready=all(checks.values()), checks=checks)


def run_service(
    broker: NatsBroker,
    *,
    on_startup: Sequence[Callable[[], Awaitable[None]]] = (),
    before_stop: Sequence[Callable[[], Awaitable[None]]] = (),
    after_stop: Sequence[Callable[[], Awaitable[None]]] = (),
) -> None:
    """Run until SIGINT or SIGTERM, then drain the subscriptions and clean up.

    `on_startup` runs once the broker is connected and before the subscribers
    start, so handlers find what they need (buckets, pools). `before_stop` runs
    while the connection is still open (e.g. to tell callers a stream ends);
    `after_stop` runs after the broker drained, so no handler is cut off.
    """

    async def connect_then_start() -> None:
        await broker.connect()
        for hook in on_startup:
            await hook()

    app = FastStream(
        broker,
        on_startup=[connect_then_start],
        on_shutdown=list(before_stop),
        after_shutdown=list(after_stop),
    )
    asyncio.run(app.run())
