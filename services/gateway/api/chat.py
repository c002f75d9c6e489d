"""`POST /v1/chat`: a question in, a grounded answer with its sources out."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import post

from proto.chat import ChatAnswer, ChatRequest
from services.gateway.chat import ChatService

__all__ = ["ChatBody", "chat"]


class ChatBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """A chat request as clients send it."""

    prompt: Annotated[str, msgspec.Meta(min_length=1, description="The question; URLs in it are read.")]
    collection: Annotated[
        str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Document collection to search.")
    ] = "default"
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 512
    use_web: bool = True
    use_documents: bool = True


@post("/chat", status_code=200, summary="Ask a question")
async def chat(data: ChatBody, chat_service: ChatService) -> ChatAnswer:
    """Answer from the pages linked in the prompt and the collection's documents."""
    request = ChatRequest(
        prompt=data.prompt,
        collection=data.collection,
        max_tokens=data.max_tokens,
        use_web=data.use_web,
        use_documents=data.use_documents,
    )
    return await chat_service.answer(request)
