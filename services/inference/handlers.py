"""The inference service's bus subscribers: thin, they decode, call Triton, encode.

A generation is accepted at once (so the caller knows a replica took it) and
then streamed by a task of its own to the request's stream subject. Every
replica hears cancellations; the one running the generation stops it, and the
cancellation reaches Triton.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing

from faststream.nats import NatsBroker

from proto.common import ErrorCode, ErrorReply
from proto.inference import (
    CancelGenerate,
    EmbedReply,
    EmbedRequest,
    GenerateAccepted,
    GenerateRequest,
    GenerateResult,
    ImageReply,
    ImageRequest,
    TokenChunk,
)
from proto.stats import InferenceStats, StatsRequest
from proto.subjects import EMBED, GENERATE, GENERATE_CANCEL, IMAGE, INFERENCE_STATS
from runtime.bus import queue_group
from runtime.errors import ServiceError
from runtime.logging import bind_request, get_logger
from services.inference.model_io import GenerationUsage
from services.inference.settings import InferenceSettings
from services.inference.triton_client import TritonModels

__all__ = ["Generations", "register_handlers"]

_log = get_logger(__name__)
_SERVICE = "inference"


class Generations:
    """The generations this replica is streaming, by request id."""

    def __init__(self, broker: NatsBroker, models: TritonModels) -> None:
        self._broker = broker
        self._models = models
        self._running: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    def start(self, request: GenerateRequest) -> None:
        """Stream `request` in a task of its own."""
        task = asyncio.create_task(self._stream(request), name=f"generate-{request.request_id}")
        self._running[request.request_id] = task
        task.add_done_callback(lambda _: self._running.pop(request.request_id, None))

    def cancel(self, request_id: str) -> bool:
        """Cancel a running generation; False when this replica does not run it."""
        task = self._running.get(request_id)
        if task is None:
            return False
        task.cancel()
        return True

    async def stop_all(self) -> None:
        """Shutdown: stop every generation, telling each caller why."""
        self._stopping = True
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def running(self) -> int:
        """How many generations stream now."""
        return len(self._running)

    async def _stream(self, request: GenerateRequest) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        first_token_s = 0.0
        parts: list[str] = []
        usage = GenerationUsage()
        with bind_request(request.request_id):
            try:
                chunks = self._models.generate(
                    request.prompt,
                    max_tokens=request.max_tokens,
                    timeout_s=request.timeout_ms / 1000,
                    sampling=request.sampling,
                )
                async with aclosing(chunks) as generated:
                    async for piece in generated:
                        if not parts:
                            first_token_s = loop.time() - started
                        chunk = TokenChunk(request_id=request.request_id, seq=len(parts), text=piece.text)
                        await self._send(chunk, request)
                        parts.append(piece.text)
                        usage.add(piece)
                result = GenerateResult(
                    request_id=request.request_id,
                    answer="".join(parts),
                    tokens=usage.tokens if usage.tokens is not None else len(parts),
                    model=self._models.model_names["generate"],
                    first_token_ms=first_token_s * 1000,
                    total_ms=(loop.time() - started) * 1000,
                    finish_reason=usage.finish_reason,
                    prompt_tokens=usage.prompt_tokens,
                )
                await self._send(result, request)
                _log.info("generation done", tokens=len(parts), total_ms=round(result.total_ms, 1))
            except asyncio.CancelledError:
                _log.info("generation cancelled", tokens=len(parts), shutdown=self._stopping)
                if self._stopping:
                    detail = "the inference replica is shutting down"
                    await self._send(ErrorReply(code=ErrorCode.UNAVAILABLE, detail=detail), request)
                raise
            except ServiceError as exc:
                _log.warning("generation failed", code=exc.code, detail=exc.detail)
                await self._send(ErrorReply(code=exc.code, detail=exc.detail, service=_SERVICE), request)
            except Exception as exc:
                _log.error("generation crashed", exc_info=exc)
                error = ErrorReply(code=ErrorCode.INTERNAL, detail="internal error", service=_SERVICE)
                await self._send(error, request)

    async def _send(
        self, message: TokenChunk | GenerateResult | ErrorReply, request: GenerateRequest
    ) -> None:
        await self._broker.publish(message, request.stream_subject, correlation_id=request.request_id)


def register_handlers(
    broker: NatsBroker, models: TritonModels, generations: Generations, settings: InferenceSettings
) -> None:
    """Subscribe the inference subjects (one queue group across replicas)."""
    group = queue_group(_SERVICE)

    @broker.subscriber(GENERATE, group, title="inference.generate")
    async def generate(request: GenerateRequest) -> GenerateAccepted:
        _check_prompt(request.prompt, settings)
        generations.start(request)
        return GenerateAccepted(request_id=request.request_id, model=models.model_names["generate"])

    # No queue group: every replica hears a cancellation, the one running it acts.
    @broker.subscriber(GENERATE_CANCEL, title="inference.cancel")
    async def cancel(request: CancelGenerate) -> None:
        if generations.cancel(request.request_id):
            _log.info("cancel requested", request_id=request.request_id)

    # Handled concurrently (a core subscriber otherwise awaits one message at a time), so
    # that concurrent callers reach Triton together and its dynamic batcher can merge them.
    @broker.subscriber(EMBED, group, title="inference.embed", max_workers=settings.max_in_flight)
    async def embed(request: EmbedRequest) -> EmbedReply:
        vectors = await models.embed(
            request.texts, timeout_s=request.timeout_ms / 1000, batch=request.priority == "batch"
        )
        dimensions = len(vectors[0]) if vectors else 0
        return EmbedReply(vectors=vectors, model=await models.display_name("embed"), dimensions=dimensions)

    @broker.subscriber(INFERENCE_STATS, group, title="inference.stats")
    async def stats(request: StatsRequest) -> InferenceStats:
        return InferenceStats(
            in_flight=models.in_flight, queued=models.queued, generations=generations.running
        )

    @broker.subscriber(IMAGE, group, title="inference.image", max_workers=settings.max_in_flight)
    async def image(request: ImageRequest) -> ImageReply:
        png = await models.image(
            request.prompt, width=request.width, height=request.height, timeout_s=request.timeout_ms / 1000
        )
        return ImageReply(png=png, model=models.model_names["image"])


def _check_prompt(prompt: str, settings: InferenceSettings) -> None:
    if not prompt.strip():
        raise ServiceError("the prompt is empty", code=ErrorCode.BAD_REQUEST)
    if len(prompt) > settings.max_prompt_chars:
        raise ServiceError(
            f"the prompt has {len(prompt)} characters, the limit is {settings.max_prompt_chars}",
            code=ErrorCode.TOO_LARGE,
        )
