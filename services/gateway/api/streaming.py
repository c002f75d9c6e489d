"""One adapter from a chat's events to the frames of each streaming protocol.

A chat yields `TokenChunk`s, then its `ChatAnswer`, or raises a `ServiceError`.
`relay` turns that into frames of one `StreamFormat` (SSE events of
`POST /v1/chat`, OpenAI's chunks, WebSocket messages), counts the answer's
tokens and the failure, and closes the chat when the client goes away (so
the generation is cancelled down to Triton).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Protocol, TypeVar

from proto.chat import ChatAnswer
from proto.inference import TokenChunk
from runtime.errors import ServiceError
from services.gateway.metrics import GatewayMetrics

__all__ = ["ChatEvents", "StreamFormat", "relay"]

ChatEvents = AsyncIterator[TokenChunk | ChatAnswer]
F = TypeVar("F")


class StreamFormat(Protocol[F]):
    """The frames of one protocol for each event of a chat."""

    def chunk(self, chunk: TokenChunk) -> F:
        """A piece of the answer."""
        ...

    def answer(self, answer: ChatAnswer) -> list[F]:
        """The end of the answer (one frame or more)."""
        ...

    def error(self, exc: ServiceError) -> F:
        """The chat failed after it started streaming."""
        ...


async def relay(
    events: ChatEvents, form: StreamFormat[F], metrics: GatewayMetrics, tenant: str
) -> AsyncGenerator[F, None]:
    """The frames of one chat's events in `form`; the chat is closed when this generator is."""
    metrics.streams.inc()
    try:
        async with aclosing(events):  # type: ignore[type-var]
            try:
                async for event in events:
                    if isinstance(event, TokenChunk):
                        yield form.chunk(event)
                        continue
                    metrics.count_answer(event, tenant)
                    for frame in form.answer(event):
                        yield frame
            except ServiceError as exc:
                metrics.count_failure(exc)
                yield form.error(exc)
    finally:
        metrics.streams.dec()
