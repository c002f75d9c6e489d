"""Embeddings over the bus: rag never loads a model, inference (Triton) computes them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
from faststream.nats import NatsBroker

from proto.common import ErrorCode
from proto.inference import EmbedReply, EmbedRequest
from proto.subjects import EMBED
from runtime.bus import BusError
from runtime.bus import request as bus_request
from runtime.errors import ServiceError

__all__ = ["BusEmbedder", "EmbeddingUnavailable", "Embeddings"]


class EmbeddingUnavailable(ServiceError):
    """The inference service could not embed (down, overloaded or erroring)."""

    code = ErrorCode.UNAVAILABLE


class Embeddings(msgspec.Struct, frozen=True):
    """One vector per text, in order, and the model that made them ("" when there were no texts)."""

    model: str
    vectors: list[list[float]]


class BusEmbedder:
    """Embeds texts through `inference.embed`, in batches sent concurrently."""

    def __init__(
        self,
        broker: NatsBroker,
        *,
        batch_size: int,
        timeout_s: float,
        max_concurrent_batches: int,
        priority: str = "interactive",
    ) -> None:
        self._broker = broker
        self._priority = priority
        self._batch_size = batch_size
        self._timeout_s = timeout_s
        self._slots = asyncio.Semaphore(max_concurrent_batches)

    async def embed(self, texts: Sequence[str], *, timeout_s: float | None = None) -> Embeddings:
        """One vector per text, in order, all from one model."""
        timeout = self._timeout_s if timeout_s is None else timeout_s
        batches = [list(texts[i : i + self._batch_size]) for i in range(0, len(texts), self._batch_size)]
        replies = await asyncio.gather(*(self._embed_batch(batch, timeout) for batch in batches))
        models = sorted({reply.model for reply in replies})
        if len(models) > 1:  # a model change while the batches ran: their vectors do not mix
            raise EmbeddingUnavailable(f"inference answered with two models at once: {models}")
        vectors = [vector for reply in replies for vector in reply.vectors]
        return Embeddings(model=models[0] if models else "", vectors=vectors)

    async def _embed_batch(self, texts: list[str], timeout_s: float) -> EmbedReply:
        async with self._slots:
            request = EmbedRequest(texts=texts, timeout_ms=int(timeout_s * 1000), priority=self._priority)
            try:
                reply = await bus_request(
                    self._broker, EMBED, request, EmbedReply, service="inference", timeout_s=timeout_s
                )
            except BusError as exc:
                raise EmbeddingUnavailable(exc.detail) from exc
        if len(reply.vectors) != len(texts):
            raise EmbeddingUnavailable("inference returned the wrong number of vectors")
        return reply
