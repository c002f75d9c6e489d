"""Scatter-gather of a chat's context: scraper and rag asked at once, one deadline.

A slow, failed or missing enricher means less context, never a failed chat:
its failure is reported in `context_errors` and the chat goes on.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TypeVar

from faststream.nats import NatsBroker

from proto.chat import ChatRequest, Source
from proto.common import Message
from proto.context import RetrieveReply, RetrieveRequest, ScrapeReply, ScrapeRequest
from proto.prompt import PromptSource
from proto.subjects import RETRIEVE, SCRAPE
from runtime.bus import BusError, request
from runtime.logging import get_logger

__all__ = ["ChatContext", "gather_context"]

_log = get_logger(__name__)
R = TypeVar("R", bound=Message)


class ChatContext:
    """The numbered sources of a chat and why some enrichers gave nothing."""

    __slots__ = ("errors", "prompt_sources", "sources")

    def __init__(self) -> None:
        self.sources: list[Source] = []
        self.prompt_sources: list[PromptSource] = []
        self.errors: list[str] = []

    def add(self, source: Source, text: str) -> None:
        self.sources.append(source)
        self.prompt_sources.append(PromptSource(source.n, source.label, text))

    def add_pages(self, reply: ScrapeReply, max_source_chars: int) -> None:
        """Number the pages the scraper read, and say which it could not."""
        for page in reply.pages:
            n = len(self.sources) + 1
            source = Source(n=n, kind="url", label=page.url, url=page.url, snippet=page.text[:300])
            self.add(source, _clip(f"{page.title or ''}\n{page.text}", max_source_chars))
        self.errors.extend(f"{e.url}: {e.detail}" for e in reply.errors)

    def add_passages(self, reply: RetrieveReply, max_source_chars: int) -> None:
        """Number the passages rag found, and say if their ranking is degraded."""
        if reply.degraded:
            self.errors.append(f"rag: {reply.degraded}")
        for passage in reply.passages:
            where = f", page {passage.page}" if passage.page is not None else ""
            heading = f" > {' > '.join(passage.heading_path)}" if passage.heading_path else ""
            source = Source(
                n=len(self.sources) + 1,
                kind="document",
                label=f"{passage.file_name}{where}{heading}",
                document_id=passage.document_id,
                chunk_index=passage.chunk_index,
                page=passage.page,
                score=passage.score,
                snippet=passage.text[:300],
            )
            self.add(source, _clip(passage.text, max_source_chars))

    def keep(self, count: int, max_prompt_chars: int) -> None:
        """Keep the first `count` sources (those the prompt had room for); say which were left out."""
        if count >= len(self.sources):
            return
        first, last = self.sources[count].n, self.sources[-1].n
        which = f"[{first}]" if first == last else f"[{first}]-[{last}]"
        self.errors.append(f"sources {which} left out: the prompt would exceed {max_prompt_chars} characters")
        del self.sources[count:], self.prompt_sources[count:]


async def gather_context(
    broker: NatsBroker,
    request: ChatRequest,
    *,
    correlation_id: str,
    timeout_s: float,
    retrieve_k: int,
    max_source_chars: int,
) -> ChatContext:
    """Ask the enabled enrichers at once and number what comes back within `timeout_s`."""
    timeout_ms = int(timeout_s * 1000)
    scrape = ScrapeRequest(prompt=request.prompt, timeout_ms=timeout_ms)
    retrieve = RetrieveRequest(
        query=request.prompt, collection=request.collection, k=retrieve_k, timeout_ms=timeout_ms
    )
    ask = functools.partial(_ask, broker, correlation_id=correlation_id, timeout_s=timeout_s)
    pages, passages = await asyncio.gather(
        ask(SCRAPE, scrape, ScrapeReply, service="scraper", enabled=request.use_web),
        ask(RETRIEVE, retrieve, RetrieveReply, service="rag", enabled=request.use_documents),
    )
    context = ChatContext()
    context.errors.extend(reply for reply in (pages, passages) if isinstance(reply, str))
    if isinstance(pages, ScrapeReply):
        context.add_pages(pages, max_source_chars)
    if isinstance(passages, RetrieveReply):
        context.add_passages(passages, max_source_chars)
    return context


async def _ask(
    broker: NatsBroker,
    subject: str,
    message: Message,
    reply_type: type[R],
    *,
    correlation_id: str,
    timeout_s: float,
    service: str,
    enabled: bool,
) -> R | str | None:
    """The enricher's reply, or why there is none, starting with its name (never raises)."""
    if not enabled:
        return None
    try:
        return await request(
            broker,
            subject,
            message,
            reply_type,
            service=service,
            timeout_s=timeout_s,
            correlation_id=correlation_id,
        )
    except BusError as exc:
        return exc.detail


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0]
