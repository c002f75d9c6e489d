"""Start-up and graceful shutdown of a bus service, and its health subject."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from faststream import FastStream
from faststream.nats import NatsBroker

from proto.health import HealthReply, HealthRequest
from proto.subjects import health_subject
from runtime.bus import queue_group

__all__ = ["HealthCheck", "Hook", "ServiceParts", "add_health", "run_service"]

Hook = Callable[[], Awaitable[None]]

# Names a dependency and says whether it is ready, e.g. {"triton": True}.
HealthCheck = Callable[[], Awaitable[dict[str, bool]]]


def add_health(broker: NatsBroker, service: str, check: HealthCheck | None = None) -> None:
    """Answer `HealthRequest` on `health.<service>` with this replica's readiness."""

    @broker.subscriber(health_subject(service), queue_group(service), title=f"{service}.health")
    async def health(request: HealthRequest) -> HealthReply:
        checks = await check() if check is not None else {}
        return HealthReply(service=service, ready=all(checks.values()), checks=checks)


@dataclass(frozen=True)
class ServiceParts:
    """What `run_service` runs: a broker with its handlers, and start/stop hooks.

    `on_startup` runs once the broker is connected and before the subscribers
    start, so handlers find what they need (buckets, pools). `before_stop` runs
    while the connection is still open (e.g. to tell callers a stream ends);
    `after_stop` runs after the broker drained, so no handler is cut off.
    """

    broker: NatsBroker
    on_startup: Sequence[Hook] = ()
    before_stop: Sequence[Hook] = ()
    after_stop: Sequence[Hook] = ()


def run_service(build: Callable[[], ServiceParts]) -> None:
    """Build the service inside the event loop, run it until SIGINT or SIGTERM, then drain.

    `build` runs in the loop so that clients bound to a loop at construction
    (gRPC, aiohttp) are bound to this one.
    """

    async def main() -> None:
        parts = build()

        async def connect_then_start() -> None:
            await parts.broker.connect()
            for hook in parts.on_startup:
                await hook()

        app = FastStream(
            parts.broker,
            on_startup=[connect_then_start],
            on_shutdown=list(parts.before_stop),
            after_shutdown=list(parts.after_stop),
        )
        await app.run()

    asyncio.run(main())
