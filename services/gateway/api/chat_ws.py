"""`WS /v1/chat/ws`: chats over one WebSocket, one at a time, each cancellable.

Client to server: a chat (the `POST /v1/chat` body: `{"prompt": ...}`), or
`{"type": "cancel"}` while an answer streams. Server to client:
`{"type": "chunk", "seq", "text"}`..., then `{"type": "answer", ...ChatAnswer}`,
or `{"type": "error", "code", "detail"}`, or `{"type": "cancelled"}`.
Each chat counts against the caller's rate limit like a request (the
handshake counts the first): over it, a chat gets
`{"type": "error", "code": "rate_limited", "detail", "retry_after_s"}`.
A cancel, or a closed socket, stops the generation down to Triton.
With API keys on, the handshake carries `Authorization: Bearer <key>` like
any `/v1` request (browsers cannot set it: the web page uses SSE instead).
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import aclosing
from typing import Any

import msgspec
from litestar import Router, WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from proto.chat import ChatAnswer, ChatRequest
from proto.common import ErrorCode
from proto.inference import TokenChunk
from runtime.errors import ServiceError
from services.gateway.api.chat import ChatBody
from services.gateway.api.streaming import relay
from services.gateway.chat import ChatService
from services.gateway.errors import RateLimited, error_body
from services.gateway.metrics import GatewayMetrics
from services.gateway.middleware import chat_id_for
from services.gateway.protection import RateLimitGuard, tenant_of
from services.gateway.settings import GatewaySettings

__all__ = ["chat_ws", "router"]


class _Cancelled(Exception):
    """The client asked to cancel the answer being streamed."""


class _NextMessage(Exception):
    """The client sent something other than a cancel while an answer was being handled."""

    def __init__(self, message: dict[str, Any]) -> None:
        super().__init__()
        self.message = message


def router(settings: GatewaySettings) -> Router:
    """The `/chat/ws` route (each message it reads is bounded by `ws_max_message_bytes` instead)."""
    return Router("/chat/ws", route_handlers=[chat_ws], request_max_body_size=settings.max_body_bytes)


@websocket("/")
async def chat_ws(
    socket: WebSocket,  # type: ignore[type-arg]
    chat_service: ChatService,
    metrics: GatewayMetrics,
    settings: GatewaySettings,
    rate_limit: RateLimitGuard,
) -> None:
    """Answer each chat sent on the socket, streaming chunks and a final answer."""
    await socket.accept()
    tenant = tenant_of(socket)
    pending: dict[str, Any] | None = None
    chats = 0
    try:
        while True:
            message, pending = pending or await _receive(socket, settings), None
            if message is None or message.get("type") == "cancel":
                continue  # nothing to cancel between chats
            try:
                body = msgspec.convert(message, ChatBody)
            except msgspec.ValidationError as exc:
                await _send_error(socket, ErrorCode.BAD_REQUEST, f"invalid chat: {exc}")
                continue
            chats += 1
            if chats > 1 and not await _admitted(socket, rate_limit):  # the handshake counted the first
                continue
            request = body.to_request(tenant)
            chat_id = chat_id_for(socket, one_of_many=True)
            pending = await _answer(socket, chat_service, metrics, settings, request, chat_id)
    except WebSocketDisconnect:
        return


async def _admitted(socket: WebSocket, rate_limit: RateLimitGuard) -> bool:  # type: ignore[type-arg]
    """Count a chat against the caller's rate limit; tell the client when it is over."""
    try:
        await rate_limit.admit(socket)
    except RateLimited as exc:
        await socket.send_json(
            {"type": "error", "code": exc.code, "detail": exc.detail, "retry_after_s": exc.retry_after_s}
        )
        return False
    except ServiceError as exc:  # the limiter's bucket is unreachable
        await _send_error(socket, exc.code, exc.detail)
        return False
    return True


async def _answer(
    socket: WebSocket,  # type: ignore[type-arg]
    chat_service: ChatService,
    metrics: GatewayMetrics,
    settings: GatewaySettings,
    request: ChatRequest,
    chat_id: str,
) -> dict[str, Any] | None:
    """Stream one answer while listening for a cancel; return a message that came after it."""
    answered = asyncio.Event()
    relay_task = asyncio.create_task(_relay(socket, chat_service, metrics, request, chat_id, answered))
    listener: asyncio.Task[None] | None = None
    next_message: dict[str, Any] | None = None
    try:
        while True:
            listener = asyncio.create_task(_wait_for_cancel(socket, settings))
            done, _ = await asyncio.wait({relay_task, listener}, return_when=asyncio.FIRST_COMPLETED)
            heard = listener.exception() if listener in done else None
            if not isinstance(heard, _NextMessage):
                break
            if answered.is_set():  # the answer is out: this is the next chat, not a clash
                next_message = heard.message
                await asyncio.gather(relay_task, return_exceptions=True)
                break
            await _send_error(
                socket, ErrorCode.BUSY, "one chat at a time: wait for the answer or send a cancel"
            )
    finally:
        for task in (relay_task, listener):
            if task is not None:
                task.cancel()  # cancelling the relay closes the chat's stream: the generation is cancelled
        await asyncio.gather(relay_task, *([listener] if listener else []), return_exceptions=True)
    finished = (
        relay_task if relay_task.done() and not relay_task.cancelled() and next_message is None else listener
    )
    error = finished.exception() if finished is not None and not finished.cancelled() else None
    if isinstance(error, _Cancelled):
        await socket.send_json({"type": "cancelled", "id": chat_id})
    elif error is not None and not isinstance(error, _NextMessage):
        raise error  # WebSocketDisconnect ends the session; anything else is a bug
    return next_message


class _SocketFrames:
    """The WebSocket's messages of one chat; `answered` is set before the last one is sent."""

    def __init__(self, answered: asyncio.Event) -> None:
        self._answered = answered

    def chunk(self, chunk: TokenChunk) -> dict[str, Any]:
        return {"type": "chunk", "seq": chunk.seq, "text": chunk.text}

    def answer(self, answer: ChatAnswer) -> list[dict[str, Any]]:
        self._answered.set()  # before sending: the client may reply as soon as it has it
        return [{**msgspec.to_builtins(answer), "type": "answer"}]

    def error(self, exc: ServiceError) -> dict[str, Any]:
        self._answered.set()
        return {"type": "error", **error_body(exc)}


async def _relay(
    socket: WebSocket,  # type: ignore[type-arg]
    chat_service: ChatService,
    metrics: GatewayMetrics,
    request: ChatRequest,
    chat_id: str,
    answered: asyncio.Event,
) -> None:
    events = chat_service.stream(request, request_id=chat_id)
    frames = relay(events, _SocketFrames(answered), metrics, tenant_of(socket).scope)
    async with aclosing(frames):
        async for frame in frames:
            await socket.send_json(frame)


async def _wait_for_cancel(socket: WebSocket, settings: GatewaySettings) -> None:  # type: ignore[type-arg]
    """Return never; raise `_Cancelled` on a cancel, `_NextMessage` on anything else,
    `WebSocketDisconnect` when the client leaves."""
    while True:
        message = await _receive(socket, settings)
        if message is None:
            continue
        if message.get("type") == "cancel":
            raise _Cancelled
        raise _NextMessage(message)


async def _receive(socket: WebSocket, settings: GatewaySettings) -> dict[str, Any] | None:  # type: ignore[type-arg]
    """The next JSON object from the client, or None after telling it what was wrong."""
    text = await socket.receive_data(mode="text")
    if len(text) > settings.ws_max_message_bytes:
        await _send_error(socket, ErrorCode.TOO_LARGE, f"message over {settings.ws_max_message_bytes} bytes")
        return None
    try:
        message = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        await _send_error(socket, ErrorCode.BAD_REQUEST, f"malformed JSON: {exc}")
        return None
    if not isinstance(message, dict):
        await _send_error(socket, ErrorCode.BAD_REQUEST, "send a JSON object")
        return None
    return message


async def _send_error(socket: WebSocket, code: ErrorCode, detail: str) -> None:  # type: ignore[type-arg]
    with contextlib.suppress(WebSocketDisconnect):  # the client left: the session ends at its next read
        await socket.send_json({"type": "error", "code": code, "detail": detail})
