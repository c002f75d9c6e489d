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
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError

from proto.common import ErrorCode, ErrorReply, MessageDecodeError, decode
from proto.inference import (
    CancelGenerate,
    GenerateAccepted,
    GenerateRequest,
    GenerateResult,
    Sampling,
    TokenChunk,
)
from proto.subjects import GENERATE, GENERATE_CANCEL, stream_subject
from runtime.logging import get_logger
from services.gateway.errors import ChatTimeout, GatewayError, UpstreamUnavailable

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
    """Yield the chunks of one generation, then its result; raise a GatewayError on failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
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
            now = loop.time()
            if now >= deadline:
                raise ChatTimeout(f"no answer within {timeout_s:.0f} s")
            if now >= quiet_until:
                raise UpstreamUnavailable(f"inference stopped streaming: no chunk for {idle_timeout_s:.0f} s")
            try:
                wait_s = min(deadline, quiet_until, now + _CONNECTION_CHECK_S) - now
                message = await subscription.next_msg(timeout=wait_s)
            except NatsTimeoutError:
                # Nothing buffered (what arrived before a disconnect is read first): is the bus there?
                if not broker.connection.is_connected:
                    raise UpstreamUnavailable("the bus connection was lost mid-answer") from None
                continue  # check the deadlines and the connection again
            except NatsError as exc:  # the connection closed for good
                raise UpstreamUnavailable(f"the bus connection closed ({type(exc).__name__})") from exc
            quiet_until = loop.time() + idle_timeout_s
            event: TokenChunk | GenerateResult | ErrorReply = decode(
                message.data, TokenChunk | GenerateResult | ErrorReply
            )
            if isinstance(event, ErrorReply):
                finished = True
                raise _error_from(event)
            if isinstance(event, TokenChunk):
                if event.seq != expected_seq:
                    raise GatewayError(f"stream out of order: chunk {event.seq}, expected {expected_seq}")
                expected_seq += 1
                yield event
                continue
            finished = True
            yield event
            return
    finally:
        await _stop_listening(broker, subscription, request_id, finished)


async def _start(broker: NatsBroker, request: GenerateRequest, accept_timeout_s: float) -> None:
    """Ask for the generation; raise unless a replica accepted it."""
    try:
        response = await broker.request(
            request, GENERATE, correlation_id=request.request_id, timeout=accept_timeout_s
        )
        accepted: GenerateAccepted | ErrorReply = decode(response.body, GenerateAccepted | ErrorReply)
    except (NatsError, TimeoutError) as exc:
        raise UpstreamUnavailable(f"inference did not answer ({type(exc).__name__})") from exc
    except MessageDecodeError as exc:
        raise UpstreamUnavailable(f"inference answered nonsense: {exc.detail}") from exc
    if isinstance(accepted, ErrorReply):
        raise _error_from(accepted)


def _error_from(reply: ErrorReply) -> GatewayError:
    detail = f"inference: {reply.detail}"
    if reply.code == ErrorCode.UNAVAILABLE:
        return UpstreamUnavailable(detail)
    if reply.code == ErrorCode.TIMEOUT:
        return ChatTimeout(detail)
    if reply.code in (ErrorCode.BAD_REQUEST, ErrorCode.TOO_LARGE):
        error = GatewayError(detail, code=reply.code)
        error.status_code = 413 if reply.code == ErrorCode.TOO_LARGE else 400
        return error
    return GatewayError(detail, code=reply.code)


async def _stop_listening(broker: NatsBroker, subscription: object, request_id: str, finished: bool) -> None:
    # Shielded: this also runs when the client's task is being cancelled.
    async def stop() -> None:
        try:
            await subscription.unsubscribe()  # type: ignore[attr-defined]
            if not finished:
                await broker.publish(CancelGenerate(request_id=request_id), GENERATE_CANCEL)
                _log.info("generation cancelled", request_id=request_id)
        except NatsError as exc:
            _log.warning("could not cancel generation", request_id=request_id, error=str(exc))

    await asyncio.shield(stop())
