"""The gateway's own bus subjects: its health, and chat for other systems on the bus."""

from __future__ import annotations

from faststream.nats import NatsBroker

from proto.chat import ChatAnswer, ChatRequest
from proto.subjects import CHAT
from runtime.bus import queue_group
from runtime.service import add_health
from services.gateway.chat import ChatService

__all__ = ["register_bus_handlers"]


def register_bus_handlers(broker: NatsBroker, chat_service: ChatService) -> None:
    """Subscribe the gateway's handlers (one queue group across its replicas)."""
    add_health(broker, "gateway")

    @broker.subscriber(CHAT, queue_group("gateway"), title="chat")
    async def chat(request: ChatRequest) -> ChatAnswer:
        return await chat_service.answer(request)
