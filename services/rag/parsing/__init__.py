"""Turn an uploaded file (PDF, DOCX, HTML, Markdown, plain text) into text sections.

`parse_document` is synchronous and CPU-bound: run it in a process pool.
A section never mixes two pages or two headings, so chunks cut from it can
cite one page and one heading path. Every failure the uploader can cause
(encrypted, corrupt, empty, too large, unknown type) is a
`DocumentParseError` or `UnsupportedDocumentType` with a human reason.

The format is decided in `formats.py`; each format has its own reader
(`pdf.py`, `docx.py`, `markup.py` for HTML and Markdown, `text.py`), and
every reader gives the `ParsedDocument` of `sections.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from services.rag.errors import DocumentParseError
from services.rag.parsing.formats import DocumentFormat, detect_format
from services.rag.parsing.markup import parse_html, parse_markdown
from services.rag.parsing.pdf import parse_pdf
from services.rag.parsing.sections import ParsedDocument, Section
from services.rag.parsing.text import decode_text, parse_text
from services.rag.parsing.word import parse_docx

if TYPE_CHECKING:
    from services.rag.settings import RagSettings

__all__ = [
    "DocumentFormat",
    "ParseLimits",
    "ParsedDocument",
    "Section",
    "detect_format",
    "parse_document",
]

_NO_TEXT_HINT = {DocumentFormat.PDF: " (a scanned PDF needs OCR, which is not supported)"}


class ParseLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Limits that keep one upload from exhausting a parse worker."""

    max_file_bytes: int = 20_000_000  # larger uploads are refused before parsing
    max_pdf_pages: int = 500  # PDFs with more pages are refused
    max_unpacked_bytes: int = 200_000_000  # DOCX (zip) content larger than this is a zip bomb

    @classmethod
    def from_settings(cls, settings: RagSettings) -> ParseLimits:
        """The limits configured in the service settings."""
        return cls(max_file_bytes=settings.max_file_bytes, max_pdf_pages=settings.max_pdf_pages)


def parse_document(
    data: bytes, *, file_name: str, content_type: str | None, limits: ParseLimits
) -> ParsedDocument:
    """Parse one uploaded file into sections; raise `DocumentParseError` with a clear reason."""
    if len(data) > limits.max_file_bytes:
        limit = limits.max_file_bytes
        raise DocumentParseError(f"file too large: {len(data)} bytes > limit of {limit} bytes")
    if not data.strip():
        raise DocumentParseError("document has no text: the file is empty")
    fmt = detect_format(data, file_name=file_name, content_type=content_type)
    if fmt is DocumentFormat.PDF:
        doc = parse_pdf(data, max_pages=limits.max_pdf_pages)
    elif fmt is DocumentFormat.DOCX:
        doc = parse_docx(data, max_unpacked_bytes=limits.max_unpacked_bytes)
    elif fmt is DocumentFormat.HTML:
        doc = parse_html(data)
    elif fmt is DocumentFormat.MARKDOWN:
        doc = parse_markdown(decode_text(data))
    else:
        doc = parse_text(data)
    sections = tuple(s for s in doc.sections if s.text.strip())
    if not sections:
        raise DocumentParseError(f"document has no text{_NO_TEXT_HINT.get(fmt, '')}")
    return ParsedDocument(format=doc.format, title=doc.title, sections=sections)
