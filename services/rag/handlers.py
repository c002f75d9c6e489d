"""The rag service's bus subscribers: thin, they decode, call, encode."""

from __future__ import annotations

from faststream.nats import NatsBroker

from proto.context import RetrieveReply, RetrieveRequest
from proto.subjects import RETRIEVE
from runtime.bus import queue_group
from services.rag.retrieval import Retriever

__all__ = ["register_handlers"]


def register_handlers(broker: NatsBroker, retriever: Retriever) -> None:
    """Subscribe the rag subjects (one queue group across replicas)."""

    @broker.subscriber(RETRIEVE, queue_group("rag"), title="retrieve")
    async def retrieve(request: RetrieveRequest) -> RetrieveReply:
        return await retriever.retrieve(request)
