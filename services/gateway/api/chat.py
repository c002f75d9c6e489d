"""`POST /v1/chat` (JSON, or Server-Sent Events with `"stream": true`) and `WS /v1/chat/ws`.

SSE events: `chunk` (`{"seq", "text"}`) per piece of the answer, then one
`answer` (the whole `ChatAnswer` with its sources), or one `error`
(`{"code", "detail"}`). An error before the first chunk (bad input, inference
down) is an ordinary HTTP error response instead.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, Router, post
from litestar.background_tasks import BackgroundTask
from litestar.openapi import ResponseSpec
from litestar.response import ServerSentEvent, ServerSentEventMessage

from proto.chat import ChatAnswer, ChatRequest, ChatTurn
from proto.inference import Sampling, TokenChunk
from runtime.errors import ServiceError
from services.gateway.api.streaming import ChatEvents, relay
from services.gateway.chat import ChatService
from services.gateway.errors import error_body
from services.gateway.metrics import GatewayMetrics
from services.gateway.middleware import chat_id_for
from services.gateway.protection import tenant_of
from services.gateway.settings import GatewaySettings
from services.gateway.tenancy import COLLECTION_PATTERN, Tenant

__all__ = ["ChatBody", "chat", "open_chat", "router"]

_MAX_TURNS = 200  # earlier messages one request may carry (the body's size is bounded too)


class TurnBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """An earlier message of the conversation."""

    role: Literal["system", "user", "assistant"]
    content: str


class ChatBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """A chat request as clients send it."""

    prompt: Annotated[str, msgspec.Meta(min_length=1, description="The question; URLs in it are read.")]
    collection: Annotated[
        str, msgspec.Meta(pattern=COLLECTION_PATTERN, description="Document collection to search.")
    ] = "default"
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 512
    use_web: bool = True
    use_documents: bool = True
    stream: Annotated[bool, msgspec.Meta(description="Answer as Server-Sent Events.")] = False
    history: Annotated[
        list[TurnBody],
        msgspec.Meta(
            max_length=_MAX_TURNS,
            description="Earlier messages, oldest first: the model reads the latest that fit its prompt.",
        ),
    ] = msgspec.field(default_factory=list)
    sampling: Sampling = Sampling()

    def to_request(self, tenant: Tenant) -> ChatRequest:
        """The bus request, its collection scoped to the caller's tenant."""
        return ChatRequest(
            prompt=self.prompt,
            collection=tenant.collection(self.collection),
            max_tokens=self.max_tokens,
            use_web=self.use_web,
            use_documents=self.use_documents,
            history=[ChatTurn(role=turn.role, content=turn.content) for turn in self.history],
            sampling=self.sampling,
        )


async def open_chat(chat_service: ChatService, request: ChatRequest, chat_id: str) -> ChatEvents:
    """Start a chat and wait for its first event, so early failures raise here, not mid-stream."""
    events = chat_service.stream(request, request_id=chat_id)
    try:
        first = await anext(events)
    except BaseException:
        await events.aclose()
        raise
    return _prepend(first, events)


async def _prepend(first: TokenChunk | ChatAnswer, events: ChatEvents) -> ChatEvents:
    async with aclosing(events):  # type: ignore[type-var]
        yield first
        async for event in events:
            yield event


def router(settings: GatewaySettings) -> Router:
    """The `/chat` route."""
    return Router("/chat", route_handlers=[chat], request_max_body_size=settings.max_body_bytes)


@post(
    "/",
    status_code=200,
    summary="Ask a question",
    description="JSON answer, or Server-Sent Events (chunk..., answer | error) when `stream` is true.",
    responses={200: ResponseSpec(data_container=ChatAnswer, description="The answer (or its SSE stream)")},
)
async def chat(
    data: ChatBody,
    request: Request[Any, Any, Any],
    chat_service: ChatService,
    metrics: GatewayMetrics,
) -> Response[Any]:
    """Answer from the pages linked in the prompt and the collection's documents."""
    tenant = tenant_of(request)
    chat_request = data.to_request(tenant)
    chat_id = chat_id_for(request)
    if not data.stream:
        answer = await chat_service.answer(chat_request, request_id=chat_id)
        metrics.count_answer(answer, tenant.scope)
        return Response(answer)
    events = await open_chat(chat_service, chat_request, chat_id)
    stream = relay(events, _ChatEventStream(), metrics, tenant.scope)
    # Runs after the response ends, also when the client went away mid-stream:
    # closing the generator closes the chat, which cancels the generation.
    return ServerSentEvent(stream, background=BackgroundTask(stream.aclose))


class _ChatEventStream:
    """`POST /v1/chat`'s Server-Sent Events: `chunk`..., then `answer` or `error`."""

    def chunk(self, chunk: TokenChunk) -> ServerSentEventMessage:
        body = msgspec.json.encode({"seq": chunk.seq, "text": chunk.text})
        return ServerSentEventMessage(data=body.decode(), event="chunk")

    def answer(self, answer: ChatAnswer) -> list[ServerSentEventMessage]:
        return [ServerSentEventMessage(data=msgspec.json.encode(answer).decode(), event="answer")]

    def error(self, exc: ServiceError) -> ServerSentEventMessage:
        return ServerSentEventMessage(data=msgspec.json.encode(error_body(exc)).decode(), event="error")
