"""Streaming a generation from the inference service over NATS.

The gateway subscribes to the request's own stream subject *before* it asks
for the generation, so no chunk can be missed; it checks that chunks arrive
in order; and whenever it stops listening early (the client went away, the
deadline passed) it tells inference to cancel, down to Triton.

A stream that goes quiet ends with an error instead of holding the client
until the chat's deadline: when the bus connection is lost (no chunk can
arrive, and those published meanwhile are gone), or when no chunk has come
for `idle_timeout_s` after the first one (the replica streaming it died).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from faststream.nats import NatsBroker
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError

from proto.common import ErrorReply, decode
from proto.inference import (
    CancelGenerate,
    GenerateAccepted,
    GenerateRequest,
    GenerateResult,
    Sampling,
    TokenChunk,
)
from proto.subjects import GENERATE, GENERATE_CANCEL, stream_subject
from runtime.bus import BusError
from runtime.bus import request as bus_request
from runtime.errors import DeadlineExceeded, ServiceError, Unavailable
from runtime.logging import get_logger

__all__ = ["stream_generation"]

_log = get_logger(__name__)

_CONNECTION_CHECK_S = 0.5  # how often a quiet stream looks at the bus connection


async def stream_generation(
    broker: NatsBroker,
    *,
    request_id: str,
    prompt: str,
    max_tokens: int,
    accept_timeout_s: float,
    timeout_s: float,
    idle_timeout_s: float,
    sampling: Sampling | None = None,
) -> AsyncGenerator[TokenChunk | GenerateResult, None]:
    """Yield the chunks of one generation, then its result; raise a `ServiceError` on failure."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    subject = stream_subject(request_id)
    subscription = await broker.connection.subscribe(subject)
    finished = False
    try:
        request = GenerateRequest(
            request_id=request_id,
            prompt=prompt,
            stream_subject=subject,
            max_tokens=max_tokens,
            timeout_ms=int(timeout_s * 1000),
            sampling=sampling or Sampling(),
        )
        await _start(broker, request, accept_timeout_s)
        expected_seq = 0
        quiet_until = deadline  # until the first chunk, only the chat's deadline bounds the wait
        while True:
            data = await _next_chunk(broker, subscription, deadline, quiet_until, timeout_s, idle_timeout_s)
            quiet_until = asyncio.get_running_loop().time() + idle_timeout_s
            event: TokenChunk | GenerateResult | ErrorReply = decode(
                data, TokenChunk | GenerateResult | ErrorReply
            )
            if isinstance(event, ErrorReply):
                finished = True
                raise _error_from(event)
            if isinstance(event, GenerateResult):
                finished = True
                yield event
                return
            if event.seq != expected_seq:
                raise ServiceError(f"stream out of order: chunk {event.seq}, expected {expected_seq}")
            expected_seq += 1
            yield event
    finally:
        await _stop_listening(broker, subscription, request_id, finished)


async def _next_chunk(
    broker: NatsBroker,
    subscription: Subscription,
    deadline: float,
    quiet_until: float,
    timeout_s: float,
    idle_timeout_s: float,
) -> bytes:
    """The next message of the stream; raise once a deadline passed or the bus is gone."""
    loop = asyncio.get_running_loop()
    while True:
        now = loop.time()
        if now >= deadline:
            raise DeadlineExceeded(f"no answer within {timeout_s:.0f} s")
        if now >= quiet_until:
            raise Unavailable(f"inference stopped streaming: no chunk for {idle_timeout_s:.0f} s")
        try:
            wait_s = min(deadline, quiet_until, now + _CONNECTION_CHECK_S) - now
            message = await subscription.next_msg(timeout=wait_s)
        except NatsTimeoutError:
            # Nothing buffered (what arrived before a disconnect is read first): is the bus there?
            if not broker.connection.is_connected:
                raise Unavailable("the bus connection was lost mid-answer") from None
            continue  # check the deadlines and the connection again
        except NatsError as exc:  # the connection closed for good
            raise Unavailable(f"the bus connection closed ({type(exc).__name__})") from exc
        return bytes(message.data)


async def _start(broker: NatsBroker, request: GenerateRequest, accept_timeout_s: float) -> None:
    """Ask for the generation; `BusError` unless a replica accepted it."""
    await bus_request(
        broker,
        GENERATE,
        request,
        GenerateAccepted,
        service="inference",
        timeout_s=accept_timeout_s,
        correlation_id=request.request_id,
    )


def _error_from(reply: ErrorReply) -> BusError:
    """Inference's error, sent on the stream instead of the next chunk."""
    return BusError(f"inference: {reply.detail}", code=reply.code, service="inference")


async def _stop_listening(
    broker: NatsBroker, subscription: Subscription, request_id: str, finished: bool
) -> None:
    # Shielded: this also runs when the client's task is being cancelled.
    async def stop() -> None:
        try:
            await subscription.unsubscribe()
            if not finished:
                await broker.publish(CancelGenerate(request_id=request_id), GENERATE_CANCEL)
                _log.info("generation cancelled", request_id=request_id)
        except NatsError as exc:
            _log.warning("could not cancel generation", request_id=request_id, error=str(exc))

    await asyncio.shield(stop())
