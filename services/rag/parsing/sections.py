"""What parsing gives: a document's text as sections, each under one heading path and page.

Every format's reader returns a `ParsedDocument`; chunking cuts chunks from
its sections, so a chunk can cite one page and one heading path.
"""

from __future__ import annotations

import msgspec

from services.rag.parsing.formats import DocumentFormat

__all__ = ["ParsedDocument", "Section"]


class Section(msgspec.Struct, frozen=True):
    """A run of text under one heading path, on one page (PDF) or none."""

    text: str
    page: int | None = None  # 1-based page number, PDFs only
    heading_path: tuple[str, ...] = ()


class ParsedDocument(msgspec.Struct, frozen=True):
    """A document's sections in reading order."""

    format: DocumentFormat
    title: str | None
    sections: tuple[Section, ...]
