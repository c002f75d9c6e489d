"""The OpenAI-compatible API: `POST /v1/chat/completions` (streamed or not) and `GET /v1/models`.

The question is the text of the last `user` message; the messages before it
(system or developer instructions, the conversation so far) go into the
model's prompt as its history, so it can follow them and answer follow-ups.
URLs in the question are read as in `POST /v1/chat`, and documents are
searched (in the `default` collection) for the question alone. The answer's sources
are added to the response as an extra `sources` field (on the last chunk
when streaming), which OpenAI clients ignore or expose as extra data.
`finish_reason` and `usage` are the model's (see `ChatAnswer`); a stream
carries `usage` only when `stream_options.include_usage` asks for it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.background_tasks import BackgroundTask
from litestar.exceptions import HTTPException
from litestar.response import ServerSentEvent, ServerSentEventMessage

from proto.chat import ChatAnswer, ChatRequest, ChatTurn
from proto.inference import (
    MAX_STOP_SEQUENCES,
    Penalty,
    Sampling,
    StopSequence,
    Temperature,
    TokenChunk,
    TopP,
)
from runtime.errors import ServiceError
from services.gateway.api.chat import open_chat
from services.gateway.api.streaming import ChatEvents, relay
from services.gateway.chat import ChatService
from services.gateway.errors import RateLimited, http_status, openai_error_body
from services.gateway.metrics import GatewayMetrics
from services.gateway.middleware import chat_id_for
from services.gateway.protection import tenant_of
from services.gateway.settings import GatewaySettings

__all__ = ["CompletionBody", "chat_completions", "get_model", "list_models", "router"]

_OWNER = "genai-services"


_Stops = Annotated[list[StopSequence], msgspec.Meta(max_length=MAX_STOP_SEQUENCES)]


class ContentPart(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """A part of a message's content; only text parts are read."""

    type: str
    text: str = ""


class ChatMessage(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """One message of the conversation."""

    role: str
    content: str | list[ContentPart] | None = None


class StreamOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """Options of a streamed completion."""

    include_usage: bool = False  # one more chunk, with no choices, carries the usage


class CompletionBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """An OpenAI chat completion request; its sampling parameters go to the model (vLLM's)."""

    model: str
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    seed: int | None = None
    stop: StopSequence | _Stops | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=4096)] | None = None
    max_completion_tokens: Annotated[int, msgspec.Meta(ge=1, le=4096)] | None = None
    # One choice per request: asking for more is refused, not answered with fewer.
    n: Annotated[int, msgspec.Meta(ge=1, le=1)] = 1


def _openai_error(
    status: int, message: str, code: str, param: str | None = None, headers: dict[str, str] | None = None
) -> Response[Any]:
    body = openai_error_body(code, message, status=status, param=param)
    return Response(body, status_code=status, headers=headers)


def _service_error(_: Request[Any, Any, Any], exc: ServiceError) -> Response[Any]:
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
    return _openai_error(http_status(exc.code), exc.detail, exc.code, headers=headers)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    headers = dict(exc.headers) if exc.headers else None
    # A validation error lists what is wrong in `extra`: say it, and name the field as `param`.
    problems = [p for p in exc.extra if isinstance(p, dict)] if isinstance(exc.extra, list) else []
    message = "; ".join([exc.detail, *(f"{p.get('key')}: {p.get('message')}" for p in problems)])
    param = str(problems[0]["key"]) if problems and problems[0].get("key") else None
    return _openai_error(exc.status_code, message, "invalid_request", param, headers=headers)


def router(settings: GatewaySettings) -> Router:
    """`/chat/completions` and `/models`, answering every error with OpenAI's error body."""
    return Router(
        "/",
        route_handlers=[chat_completions, list_models, get_model],
        exception_handlers={ServiceError: _service_error, HTTPException: _http_error},  # type: ignore[dict-item]
        request_max_body_size=settings.max_body_bytes,
    )


def _conversation(messages: list[ChatMessage]) -> tuple[str, list[ChatTurn]]:
    """The last user message's text, and the messages before it as history."""
    for at in range(len(messages) - 1, -1, -1):
        if messages[at].role == "user" and messages[at].content is not None:
            earlier = [ChatTurn(role=m.role, content=_text(m)) for m in messages[:at]]
            return _text(messages[at]), [turn for turn in earlier if turn.content.strip()]
    return "", []


def _text(message: ChatMessage) -> str:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    return "\n".join(part.text for part in message.content if part.type == "text")


@get("/models", summary="OpenAI: list models")
async def list_models(settings: GatewaySettings) -> dict[str, Any]:
    """The models `POST /v1/chat/completions` accepts."""
    return {"object": "list", "data": [_model(name) for name in settings.models]}


@get("/models/{model:str}", summary="OpenAI: one model")
async def get_model(model: str, settings: GatewaySettings) -> Response[Any]:
    """One model, or 404."""
    if model not in settings.models:
        return _openai_error(404, f"The model '{model}' does not exist", "model_not_found", "model")
    return Response(_model(model))


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": _OWNER}


@post(
    "/chat/completions",
    status_code=200,
    summary="OpenAI: chat completion",
)
async def chat_completions(
    data: CompletionBody,
    request: Request[Any, Any, Any],
    chat_service: ChatService,
    metrics: GatewayMetrics,
    settings: GatewaySettings,
) -> Response[Any]:
    """Answer the last user message; streamed as `data: {chunk}` lines ending with `data: [DONE]`."""
    if data.model not in settings.models:
        return _openai_error(404, f"The model '{data.model}' does not exist", "model_not_found", "model")
    question, history = _conversation(data.messages)
    question = question.strip()
    if not question:
        return _openai_error(400, "no user message with text content", "invalid_request", "messages")
    chat_request = ChatRequest(
        prompt=question,
        collection=tenant_of(request).collection("default"),
        max_tokens=data.max_completion_tokens or data.max_tokens or 512,
        history=history,
        sampling=Sampling(
            temperature=data.temperature,
            top_p=data.top_p,
            seed=data.seed,
            stop=(data.stop,) if isinstance(data.stop, str) else tuple(data.stop or ()),
            presence_penalty=data.presence_penalty,
            frequency_penalty=data.frequency_penalty,
        ),
    )
    chat_id = chat_id_for(request)
    completion = _Completion(f"chatcmpl-{chat_id}", data.model, question, tenant_of(request).scope)
    events = await open_chat(chat_service, chat_request, chat_id)
    if data.stream:
        completion.include_usage = data.stream_options is not None and data.stream_options.include_usage
        stream = _stream(completion, events, metrics)
        return ServerSentEvent(stream, background=BackgroundTask(stream.aclose))
    async with aclosing(events):  # type: ignore[type-var]
        async for event in events:
            if isinstance(event, ChatAnswer):
                metrics.count_answer(event, completion.tenant)
                return Response(completion.whole(event))
            completion.tokens += 1
    raise AssertionError("a chat stream always ends with its answer")


class _Completion:
    """The fields every object of one completion shares."""

    def __init__(self, completion_id: str, model: str, question: str, tenant: str) -> None:
        self.id = completion_id
        self.tenant = tenant  # the caller's scope, for the token metrics
        self.model = model
        self.created = int(time.time())
        self._question_words = len(question.split())
        self.tokens = 0  # chunks streamed, for a model that does not count its tokens
        self.include_usage = False

    def usage(self, answer: ChatAnswer) -> dict[str, int]:
        """The model's counts: the prompt holds the sources too, not only the question."""
        prompt = answer.prompt_tokens or self._question_words
        completion = answer.completion_tokens or self.tokens
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def whole(self, answer: ChatAnswer) -> dict[str, Any]:
        message = {"role": "assistant", "content": answer.answer}
        choice = {"index": 0, "message": message, "finish_reason": answer.finish_reason, "logprobs": None}
        return {
            **self._head("chat.completion"),
            "choices": [choice],
            "usage": self.usage(answer),
            "sources": msgspec.to_builtins(answer.sources),
        }

    def chunk(self, delta: dict[str, str], finish_reason: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return self._encode({"choices": [choice], **extra})

    def usage_chunk(self, answer: ChatAnswer) -> str:
        """The chunk `stream_options.include_usage` asks for: no choices, the usage."""
        return self._encode({"choices": [], "usage": self.usage(answer)})

    def _encode(self, fields: dict[str, Any]) -> str:
        # With include_usage every chunk has a usage field, null but on the usage chunk.
        usage = {"usage": None} if self.include_usage else {}
        body = {**self._head("chat.completion.chunk"), **usage, **fields}
        return msgspec.json.encode(body).decode()

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


class _CompletionChunks:
    """OpenAI's streamed chunks of one completion (`data: {chunk}` lines)."""

    def __init__(self, completion: _Completion) -> None:
        self._completion = completion

    def chunk(self, chunk: TokenChunk) -> ServerSentEventMessage:
        self._completion.tokens += 1
        return ServerSentEventMessage(data=self._completion.chunk({"content": chunk.text}))

    def answer(self, answer: ChatAnswer) -> list[ServerSentEventMessage]:
        sources = msgspec.to_builtins(answer.sources)
        frames = [
            ServerSentEventMessage(data=self._completion.chunk({}, answer.finish_reason, sources=sources))
        ]
        if self._completion.include_usage:
            frames.append(ServerSentEventMessage(data=self._completion.usage_chunk(answer)))
        return frames

    def error(self, exc: ServiceError) -> ServerSentEventMessage:
        body = openai_error_body(exc.code, exc.detail, status=http_status(exc.code))
        return ServerSentEventMessage(data=msgspec.json.encode(body).decode())


async def _stream(
    completion: _Completion, events: ChatEvents, metrics: GatewayMetrics
) -> AsyncGenerator[ServerSentEventMessage, None]:
    yield ServerSentEventMessage(data=completion.chunk({"role": "assistant", "content": ""}))
    async with aclosing(relay(events, _CompletionChunks(completion), metrics, completion.tenant)) as frames:
        async for frame in frames:
            yield frame
    yield ServerSentEventMessage(data="[DONE]")
