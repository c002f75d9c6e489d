"""Chat: a question in, a grounded answer with its sources out."""

from __future__ import annotations

import msgspec

from proto.common import Message
from proto.inference import Sampling

__all__ = ["ChatAnswer", "ChatRequest", "ChatTurn", "Source"]


class ChatTurn(msgspec.Struct, kw_only=True, frozen=True):
    """An earlier message of a conversation: `system` instructions, a `user` or `assistant` turn."""

    role: str
    content: str


class ChatRequest(Message, tag="chat.request"):
    """Ask the assistant; URLs in the prompt are read, documents of `collection` searched.

    `history` (oldest first) is put into the model's prompt, so it can follow
    instructions and answer follow-ups; links are read and documents searched
    for `prompt` alone.
    """

    prompt: str
    collection: str = "default"
    max_tokens: int = 512
    use_web: bool = True
    use_documents: bool = True
    history: list[ChatTurn] = msgspec.field(default_factory=list)
    sampling: Sampling = Sampling()


class Source(msgspec.Struct, kw_only=True, frozen=True):
    """What an answer cites as [n]: a web page or a passage of a document."""

    n: int
    kind: str  # "url" | "document"
    label: str  # the URL, or "file name, page N" / "file name > heading"
    url: str | None = None
    document_id: str | None = None
    chunk_index: int | None = None
    page: int | None = None
    score: float | None = None
    snippet: str = ""


class ChatAnswer(Message, tag="chat.answer"):
    """The answer, its numbered sources and the model that wrote it."""

    id: str
    answer: str
    sources: list[Source] = msgspec.field(default_factory=list)
    model: str = ""
    context_errors: list[str] = msgspec.field(default_factory=list)
    finish_reason: str = "stop"  # "length" when max_tokens cut the answer
    prompt_tokens: int = 0  # as the model counts them: question and sources; 0 if it does not say
    completion_tokens: int = 0
