"""Context for a chat: pages read by the scraper and passages retrieved by rag."""

from __future__ import annotations

import msgspec

from proto.common import Message

__all__ = [
    "Passage",
    "RetrieveReply",
    "RetrieveRequest",
    "ScrapeReply",
    "ScrapeRequest",
    "ScrapedPage",
    "UrlError",
]


class ScrapeRequest(Message, tag="scrape.request"):
    """Read the web pages whose URLs appear in `prompt` (or the explicit `urls`)."""

    prompt: str = ""
    urls: list[str] = msgspec.field(default_factory=list)
    timeout_ms: int = 5_000  # the caller's remaining budget; the reply comes before it ends


class ScrapedPage(msgspec.Struct, kw_only=True, frozen=True):
    """The main text of one page."""

    url: str
    final_url: str
    title: str | None = None
    text: str
    language: str | None = None
    cached: bool = False


class UrlError(msgspec.Struct, kw_only=True, frozen=True):
    """Why one URL gave no page (`code` e.g. refused, timeout, too_large, http_status)."""

    url: str
    code: str
    detail: str


class ScrapeReply(Message, tag="scrape.reply"):
    """Per-URL results: the pages read, and an error for each URL that failed."""

    pages: list[ScrapedPage] = msgspec.field(default_factory=list)
    errors: list[UrlError] = msgspec.field(default_factory=list)


class RetrieveRequest(Message, tag="retrieve.request"):
    """Find the passages of a collection's documents that best match `query`."""

    query: str
    collection: str = "default"
    k: int = 5
    mode: str = "hybrid"  # hybrid | bm25 | vector
    document_ids: list[str] | None = None
    timeout_ms: int = 5_000


class Passage(msgspec.Struct, kw_only=True, frozen=True):
    """One retrieved chunk, with what an answer needs to cite it."""

    document_id: str
    file_name: str
    chunk_index: int
    text: str
    score: float
    page: int | None = None
    heading_path: list[str] = msgspec.field(default_factory=list)
    char_start: int = 0
    char_end: int = 0


class RetrieveReply(Message, tag="retrieve.reply"):
    """Passages, best first."""

    passages: list[Passage] = msgspec.field(default_factory=list)
    # Why the ranking is not the one asked for (a hybrid search answered by BM25 alone
    # while the query could not be embedded); "" when it is.
    degraded: str = ""
