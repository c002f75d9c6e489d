"""Request ids and request metrics, as one ASGI middleware around every route.

A client may send `X-Request-ID`; a sane one (letters, digits, `-`, `_`,
up to 64 characters) is kept, anything else is replaced by a fresh id. The
id is echoed in the response's `X-Request-ID` header and is the correlation
id of the chat the request starts (see `chat_id_for`).
"""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING

from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders

from services.gateway.metrics import GatewayMetrics

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["REQUEST_ID_HEADER", "chat_id_for", "request_id_of", "request_middleware"]

REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_STATE_KEY = "request_id"
_CLIENT_SENT_KEY = "request_id_from_client"


def request_id_of(connection: ASGIConnection) -> str:  # type: ignore[type-arg]
    """The id of the request (set by the middleware; a fresh one if it did not run)."""
    state = connection.scope.setdefault("state", {})
    request_id: str = state.setdefault(_STATE_KEY, uuid.uuid4().hex)
    return request_id


def chat_id_for(connection: ASGIConnection, *, one_of_many: bool = False) -> str:  # type: ignore[type-arg]
    """The chat's correlation id: the request id, made unique when it may serve more than one chat.

    A chat's id names its token stream on the bus and the target of its cancel,
    so two chats must never share one. A client-sent request id, and the id of a
    WebSocket (`one_of_many`: one connection, many chats), get a random suffix;
    the chat id still starts with the request id, for the logs.
    """
    request_id = request_id_of(connection)
    if one_of_many or connection.scope.get("state", {}).get(_CLIENT_SENT_KEY):
        return f"{request_id}-{uuid.uuid4().hex[:12]}"
    return request_id


def request_middleware(app: ASGIApp, metrics: GatewayMetrics) -> ASGIApp:
    """Wrap `app`: assign the request id, echo it, and count and time the request."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        kind = str(scope["type"])
        if kind not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        client_id = _client_request_id(scope)
        state = scope.setdefault("state", {})
        state[_STATE_KEY] = client_id or uuid.uuid4().hex
        state[_CLIENT_SENT_KEY] = client_id is not None
        route = scope.get("path_template") or "unmatched"
        method = str(scope.get("method", "WS")) if kind == "http" else "WS"
        status = {"code": 500 if kind == "http" else 101}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = MutableScopeHeaders.from_message(message)
                headers[REQUEST_ID_HEADER] = state[_STATE_KEY]
            elif message["type"] == "websocket.close":
                status["code"] = message.get("code", 1000)
            await send(message)

        started = time.perf_counter()
        try:
            await app(scope, receive, send_with_id)
        finally:
            metrics.latency.labels(route=route, method=method).observe(time.perf_counter() - started)
            metrics.requests.labels(route=route, method=method, status=str(status["code"])).inc()

    return middleware


def _client_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1").strip()
            return text if _SANE_ID.match(text) else None
    return None
