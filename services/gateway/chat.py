"""A chat from question to grounded answer: context, prompt, streamed generation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing

from faststream.nats import NatsBroker

from proto.chat import ChatAnswer, ChatRequest
from proto.inference import GenerateResult, TokenChunk
from runtime.errors import DeadlineExceeded, TooLarge
from runtime.logging import bind_request, get_logger
from services.gateway.context import gather_context
from services.gateway.generation import stream_generation
from services.gateway.prompt import fit_prompt, recent_history
from services.gateway.settings import GatewaySettings

__all__ = ["ChatService"]

_log = get_logger(__name__)
# What a chat's answer takes from the model's result as it is.
_FROM_RESULT = ("answer", "model", "finish_reason", "prompt_tokens")


class ChatService:
    """Answers chats; one per gateway process, shared by REST, WebSocket and the bus."""

    def __init__(self, broker: NatsBroker, settings: GatewaySettings) -> None:
        self._broker = broker
        self._settings = settings

    async def stream(
        self, request: ChatRequest, *, request_id: str | None = None
    ) -> AsyncGenerator[TokenChunk | ChatAnswer, None]:
        """Yield the answer's chunks as they come, then the whole `ChatAnswer`."""
        settings = self._settings
        if len(request.prompt) > settings.max_prompt_chars:
            raise TooLarge(
                f"prompt has {len(request.prompt)} characters, the limit is {settings.max_prompt_chars}"
            )
        chat_id = request_id or uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.chat_timeout_s  # the whole chat, enrichment included
        with bind_request(chat_id):
            context = await gather_context(
                self._broker,
                request,
                correlation_id=chat_id,
                timeout_s=min(settings.context_timeout_s, settings.chat_timeout_s),
                retrieve_k=settings.retrieve_k,
                max_source_chars=settings.max_source_chars,
            )
            _log.info("context gathered", sources=len(context.sources), errors=context.errors)
            history = recent_history(request.history, settings.max_history_chars)
            limit = settings.max_model_prompt_chars
            prompt, kept = fit_prompt(request.prompt, context.prompt_sources, history, limit)
            context.keep(kept, limit)
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                raise DeadlineExceeded(
                    f"no answer within {settings.chat_timeout_s:.0f} s: reading the context took it all"
                )
            generation = stream_generation(
                self._broker,
                request_id=chat_id,
                prompt=prompt,
                max_tokens=request.max_tokens,
                accept_timeout_s=min(settings.accept_timeout_s, remaining_s),
                timeout_s=remaining_s,
                idle_timeout_s=settings.stream_idle_timeout_s,
                sampling=request.sampling,
            )
            async with aclosing(generation) as events:
                async for event in events:
                    if isinstance(event, GenerateResult):
                        as_generated = {name: getattr(event, name) for name in _FROM_RESULT}
                        yield ChatAnswer(
                            id=chat_id,
                            sources=context.sources,
                            context_errors=context.errors,
                            completion_tokens=event.tokens,
                            **as_generated,
                        )
                        return
                    yield event

    async def answer(self, request: ChatRequest, *, request_id: str | None = None) -> ChatAnswer:
        """The whole answer at once."""
        async with aclosing(self.stream(request, request_id=request_id)) as events:
            async for event in events:
                if isinstance(event, ChatAnswer):
                    return event
        raise AssertionError("a chat stream always ends with its answer")
