"""The NATS connection every service uses: a FastStream broker set up one way.

- msgspec decodes and encodes the Structs of `proto/`;
- the correlation id of each message (FastStream's `correlation_id` header)
  is bound to every log line written while it is handled;
- errors are routed by the broker: a `ServiceError` becomes an `ErrorReply`
  with its code and detail, bad input a `bad_request` reply, anything else an
  `internal` reply after its traceback is logged;
- the connection retries forever at start-up (the service waits for NATS),
  and `broker.stop()` drains subscriptions on shutdown;
- `request` is the one way any service asks another and waits for its reply.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

from fast_depends.exceptions import ValidationError
from fast_depends.msgspec import MsgSpecSerializer
from faststream import BaseMiddleware, ExceptionMiddleware
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError

from proto.common import ErrorCode, ErrorReply, Message, MessageDecodeError, decode
from runtime.errors import ServiceError
from runtime.logging import bind_request, current_correlation_id, get_logger

if TYPE_CHECKING:
    from types import TracebackType

    from faststream._internal.basic_types import AsyncFuncAny
    from faststream.message import StreamMessage

__all__ = ["BusError", "make_broker", "queue_group", "request"]

_log = get_logger(__name__)
R = TypeVar("R", bound=Message)


class BusError(ServiceError):
    """A request on the bus that got no usable reply: the other service's error, or no reply at all."""

    def __init__(self, detail: str, *, code: ErrorCode, service: str) -> None:
        super().__init__(detail, code=code)
        self.service = service  # the service that was asked


async def request(
    broker: NatsBroker,
    subject: str,
    message: Message,
    reply_type: type[R],
    *,
    service: str,
    timeout_s: float,
    correlation_id: str | None = None,
) -> R:
    """Ask `service` on `subject`; its reply decoded as `reply_type` (a Struct or union), or `BusError`.

    The correlation id is `correlation_id`, else the one of the message being
    handled (so one chat's id follows it from service to service), else a new
    one. Every failure is mapped to an `ErrorCode` here, once: the other
    side's `ErrorReply` keeps its code; no reply within `timeout_s`, no
    responder, a lost connection and an unreadable reply are `unavailable`.
    Each detail starts with the service's name.
    """
    cid = correlation_id or current_correlation_id() or uuid.uuid4().hex
    try:
        response = await broker.request(message, subject, correlation_id=cid, timeout=timeout_s)
    except TimeoutError:  # also nats-py's TimeoutError
        raise BusError(
            f"{service}: no answer within {timeout_s:g} s", code=ErrorCode.UNAVAILABLE, service=service
        ) from None
    except NatsError as exc:
        raise BusError(
            f"{service}: unavailable ({type(exc).__name__})", code=ErrorCode.UNAVAILABLE, service=service
        ) from exc
    try:
        reply: R | ErrorReply = decode(response.body, reply_type | ErrorReply)
    except MessageDecodeError as exc:
        raise BusError(
            f"{service}: unreadable reply: {exc.detail}", code=ErrorCode.UNAVAILABLE, service=service
        ) from exc
    if isinstance(reply, ErrorReply):
        raise BusError(f"{service}: {reply.detail}", code=reply.code, service=service)
    return reply


class _CorrelationMiddleware(BaseMiddleware):  # type: ignore[type-arg]
    """Binds the message's correlation id and subject to the logs of its handling."""

    async def consume_scope(self, call_next: AsyncFuncAny, msg: StreamMessage[Any]) -> Any:
        subject = getattr(msg.raw_message, "subject", "")
        started = time.perf_counter()
        with bind_request(msg.correlation_id, subject=subject):
            try:
                return await call_next(msg)
            finally:  # an access log: each message handled, with its correlation id
                _log.info("message handled", ms=round(1000 * (time.perf_counter() - started), 1))


def _error_routing(service: str) -> ExceptionMiddleware:
    errors = ExceptionMiddleware()

    @errors.add_handler(ServiceError, publish=True)
    def _service_error(exc: ServiceError) -> ErrorReply:
        _log.warning("request failed", code=exc.code, detail=exc.detail)
        return ErrorReply(code=exc.code, detail=exc.detail, service=service)

    @errors.add_handler(ValidationError, publish=True)
    def _bad_input(exc: ValidationError) -> ErrorReply:
        _log.warning("bad request", detail=str(exc))
        return ErrorReply(code=ErrorCode.BAD_REQUEST, detail=_short(exc), service=service)

    @errors.add_handler(MessageDecodeError, publish=True)
    def _undecodable(exc: MessageDecodeError) -> ErrorReply:
        _log.warning("bad request", detail=exc.detail)
        return ErrorReply(code=ErrorCode.BAD_REQUEST, detail=exc.detail, service=service)

    @errors.add_handler(Exception, publish=True)
    def _bug(exc: Exception) -> ErrorReply:
        _log.error("handler failed", exc_info=exc)
        return ErrorReply(code=ErrorCode.INTERNAL, detail="internal error", service=service)

    return errors


def _short(exc: ValidationError) -> str:
    text = str(exc)
    return f"invalid message: {text[:500]}"


class _Broker(NatsBroker):
    """A NatsBroker whose shutdown also succeeds when NATS is already gone."""

    async def stop(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> None:
        connection = self._connection
        try:
            await super().stop(exc_type, exc_val, exc_tb)
        except NatsError as exc:
            # Draining needs the server; when it left first (e.g. everything is
            # stopping at once), close without draining rather than crash.
            _log.warning("could not drain the NATS connection; closing it", error=repr(exc))
            if connection is not None and not connection.is_closed:
                await connection.close()
            self._connection = None
            self.config.disconnect()


def make_broker(nats_url: str, service: str, *, graceful_timeout_s: float = 15.0) -> NatsBroker:
    """A broker for `service`, connected to `nats_url` (comma-separated for a cluster)."""
    return _Broker(
        [url.strip() for url in nats_url.split(",") if url.strip()],
        name=service,
        serializer=MsgSpecSerializer(),
        middlewares=[_CorrelationMiddleware, _error_routing(service)],
        max_reconnect_attempts=-1,  # wait for NATS at start-up and after a restart
        reconnect_time_wait=1,
        graceful_timeout=graceful_timeout_s,
        logger=None,  # our middleware logs what matters, with the correlation id
    )


def queue_group(service: str) -> str:
    """The queue group of a service's replicas: each request goes to one of them."""
    return service
