"""The NATS connection every service uses: a FastStream broker set up one way.

- msgspec decodes and encodes the Structs of `proto/`;
- the correlation id of each message (FastStream's `correlation_id` header)
  is bound to every log line written while it is handled;
- errors are routed by the broker: a `ServiceError` becomes an `ErrorReply`
  with its code and detail, bad input a `bad_request` reply, anything else an
  `internal` reply after its traceback is logged;
- the connection retries forever at start-up (the service waits for NATS),
  and `broker.stop()` drains subscriptions on shutdown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fast_depends.exceptions import ValidationError
from fast_depends.msgspec import MsgSpecSerializer
from faststream import BaseMiddleware, ExceptionMiddleware
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError

from proto.common import ErrorCode, ErrorReply, MessageDecodeError
from runtime.errors import ServiceError
from runtime.logging import bind_request, get_logger

if TYPE_CHECKING:
    from types import TracebackType

    from faststream._internal.basic_types import AsyncFuncAny
    from faststream.message import StreamMessage

__all__ = ["make_broker", "queue_group"]

_log = get_logger(__name__)


class _CorrelationMiddleware(BaseMiddleware):  # type: ignore[type-arg]
    """Binds the message's correlation id and subject to the logs of its handling."""

    async def consume_scope(self, call_next: AsyncFuncAny, msg: StreamMessage[Any]) -> Any:
        subject = getattr(msg.raw_message, "subject", "")
        with bind_request(msg.correlation_id, subject=subject):
            return await call_next(msg)


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
