"""Start-up and graceful shutdown of a bus service, its request subscribers and its health subject."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from faststream import FastStream
from faststream.nats import NatsBroker

from proto.health import HealthReply, HealthRequest
from proto.subjects import health_subject
from runtime.bus import queue_group
from runtime.logging import configure_logging
from runtime.settings import load_settings

__all__ = ["HealthCheck", "Hook", "ServiceParts", "add_health", "answer_requests", "run_service", "serve"]

S = TypeVar("S", bound=msgspec.Struct)

Hook = Callable[[], Awaitable[None]]

# Names a dependency and says whether it is ready, e.g. {"triton": True}.
HealthCheck = Callable[[], Awaitable[dict[str, bool]]]


def answer_requests(
    broker: NatsBroker,
    service: str,
    subject: str,
    answer: Callable[[Any], Awaitable[Any]],
    *,
    max_workers: int | None = None,
    title: str | None = None,
) -> None:
    """Reply to each request on `subject` with `answer(request)`, in one replica of `service`.

    The broker decodes the request and encodes the reply by `answer`'s annotations
    (first parameter, return type), so they must be importable at run time.
    `max_workers` requests are answered at once (None: one at a time). The
    subscriber is named after its subject (AsyncAPI, logs) unless `title` says otherwise.
    """
    group = queue_group(service)
    broker.subscriber(subject, group, title=title or subject, max_workers=max_workers)(answer)


def add_health(broker: NatsBroker, service: str, check: HealthCheck | None = None) -> None:
    """Answer `HealthRequest` on `health.<service>` with this replica's readiness."""

    async def health(request: HealthRequest) -> HealthReply:
        checks = await check() if check is not None else {}
        return HealthReply(service=service, ready=all(checks.values()), checks=checks)

    answer_requests(broker, service, health_subject(service), health, title=f"{service}.health")


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


def serve(service: str, settings_type: type[S], build: Callable[[S], ServiceParts]) -> None:
    """Read the `<SERVICE>_*` settings, configure logging, and run what `build` makes of them.

    The start-up of every bus service (`python -m services.<service>`); it returns
    after SIGINT or SIGTERM, once the service has drained (see `run_service`).
    """
    settings = load_settings(settings_type, service.upper())
    configure_logging(service)
    run_service(lambda: build(settings))


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
