"""Turn an uploaded file (PDF, DOCX, HTML, Markdown, plain text) into text sections.

`parse_document` is synchronous and CPU-bound: run it in a process pool.
A section never mixes two pages or two headings, so chunks cut from it can
cite one page and one heading path. Every failure the uploader can cause
(encrypted, corrupt, empty, too large, unknown type) is a
`DocumentParseError` or `UnsupportedDocumentType` with a human reason.
"""

from __future__ import annotations

import enum
import io
import re
import zipfile
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import msgspec

from services.rag.errors import DocumentParseError, UnsupportedDocumentType

if TYPE_CHECKING:
    from collections.abc import Iterator

    from docx.document import Document as DocxDocument
    from docx.table import Table

    from services.rag.settings import RagSettings

__all__ = [
    "DocumentFormat",
    "ParseLimits",
    "ParsedDocument",
    "Section",
    "detect_format",
    "parse_document",
]


class DocumentFormat(enum.StrEnum):
    """The formats we read."""

    PDF = "pdf"
    DOCX = "docx"
    HTML = "html"
    MARKDOWN = "markdown"
    TEXT = "text"


class ParseLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Limits that keep one upload from exhausting a parse worker."""

    max_file_bytes: int = 20_000_000  # larger uploads are refused before parsing
    max_pdf_pages: int = 500  # PDFs with more pages are refused
    max_unpacked_bytes: int = 200_000_000  # DOCX (zip) content larger than this is a zip bomb

    @classmethod
    def from_settings(cls, settings: RagSettings) -> ParseLimits:
        """The limits configured in the service settings."""
        return cls(max_file_bytes=settings.max_file_bytes, max_pdf_pages=settings.max_pdf_pages)


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


_CONTENT_TYPES = {
    "application/pdf": DocumentFormat.PDF,
    "application/x-pdf": DocumentFormat.PDF,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": DocumentFormat.DOCX,
    "text/html": DocumentFormat.HTML,
    "application/xhtml+xml": DocumentFormat.HTML,
    "text/markdown": DocumentFormat.MARKDOWN,
    "text/x-markdown": DocumentFormat.MARKDOWN,
    "text/plain": DocumentFormat.TEXT,
}
_EXTENSIONS = {
    ".pdf": DocumentFormat.PDF,
    ".docx": DocumentFormat.DOCX,
    ".html": DocumentFormat.HTML,
    ".htm": DocumentFormat.HTML,
    ".xhtml": DocumentFormat.HTML,
    ".md": DocumentFormat.MARKDOWN,
    ".markdown": DocumentFormat.MARKDOWN,
    ".txt": DocumentFormat.TEXT,
    ".text": DocumentFormat.TEXT,
}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .doc, and password-protected Office files
_BINARY_MAGICS = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"\x7fELF")
_HTML_START_RE = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body)", re.IGNORECASE)
_ATX_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT_RE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_DOCX_HEADING_RE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)


def detect_format(data: bytes, *, file_name: str, content_type: str | None) -> DocumentFormat:
    """The format of `data`: magic bytes first, then content type, then the file extension.

    A PDF named `.txt` is a PDF; a `.pdf` that does not start like one is parsed
    as a PDF and reported corrupt. Unknown types raise `UnsupportedDocumentType`.
    """
    head = data[:1024]
    if b"%PDF-" in head:
        return DocumentFormat.PDF
    declared = _CONTENT_TYPES.get((content_type or "").split(";")[0].strip().lower())
    by_name = _EXTENSIONS.get(PurePath(file_name).suffix.lower())
    if declared is None or (declared is DocumentFormat.TEXT and by_name is not None):
        declared = by_name
    if head.startswith(b"PK\x03\x04"):
        entries = _zip_entries(data)
        if entries is None:
            kind = "DOCX" if declared is DocumentFormat.DOCX else "file"
            raise DocumentParseError(f"{kind} is corrupt: damaged zip archive")
        if "word/document.xml" in entries:
            return DocumentFormat.DOCX
        raise UnsupportedDocumentType(f"{file_name!r} is a zip archive but not a DOCX document")
    if head.startswith(_OLE_MAGIC):
        if declared is DocumentFormat.DOCX:
            raise DocumentParseError("DOCX is encrypted (password-protected) or is a legacy .doc file")
        raise UnsupportedDocumentType(f"{file_name!r} is a legacy Office file; save it as DOCX or PDF")
    if declared is None and _HTML_START_RE.match(head):
        return DocumentFormat.HTML
    if declared is None or (declared is not DocumentFormat.PDF and head.startswith(_BINARY_MAGICS)):
        raise UnsupportedDocumentType(
            f"unsupported document type for {file_name!r} (content type {content_type!r}); "
            "accepted: PDF, DOCX, HTML, Markdown, plain text"
        )
    return declared


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
        doc = _parse_pdf(data, limits)
    elif fmt is DocumentFormat.DOCX:
        doc = _parse_docx(data, limits)
    elif fmt is DocumentFormat.HTML:
        doc = _parse_html(data)
    elif fmt is DocumentFormat.MARKDOWN:
        doc = _parse_markdown(_decode_text(data))
    else:
        doc = ParsedDocument(format=fmt, title=None, sections=(Section(text=_decode_text(data).strip()),))
    sections = tuple(s for s in doc.sections if s.text.strip())
    if not sections:
        raise DocumentParseError(f"document has no text{_NO_TEXT_HINT.get(fmt, '')}")
    return ParsedDocument(format=doc.format, title=doc.title, sections=sections)


_PREFERRED_ENCODINGS = ("cp1252", "latin_1", "iso8859_15")
_NO_TEXT_HINT = {DocumentFormat.PDF: " (a scanned PDF needs OCR, which is not supported)"}


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _decode_text(data: bytes) -> str:
    """Text bytes as str: UTF-8 (with or without BOM), UTF-16 with BOM, else detected."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return _normalise(data.decode("utf-16"))
        except UnicodeDecodeError:
            pass
    for encoding in ("utf-8-sig", "utf-8"):
        try:
            return _normalise(data.decode(encoding))
        except UnicodeDecodeError:
            continue
    import charset_normalizer  # only the rare non-UTF-8 upload pays for the import

    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is None:
        raise DocumentParseError("text is in no character encoding we recognise")
    # Short texts often score the same in several single-byte code pages; among
    # equally good guesses prefer the most widespread one (WHATWG reads latin-1 as cp1252).
    tied = {m.encoding: m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)}
    chosen = next((tied[e] for e in _PREFERRED_ENCODINGS if e in tied), best)
    return _normalise(str(chosen))


def _parse_pdf(data: bytes, limits: ParseLimits) -> ParsedDocument:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise DocumentParseError("PDF is encrypted (password-protected)") from exc
        raise DocumentParseError(f"PDF is corrupt: {exc}") from exc
    try:
        page_count = len(pdf)
        if page_count > limits.max_pdf_pages:
            limit = limits.max_pdf_pages
            raise DocumentParseError(f"PDF has too many pages: {page_count} > limit of {limit}")
        title = (pdf.get_metadata_dict(skip_empty=True).get("Title") or "").strip() or None
        sections = [Section(text=_pdf_page_text(pdf, i).strip(), page=i + 1) for i in range(page_count)]
    except pdfium.PdfiumError as exc:
        raise DocumentParseError(f"PDF is corrupt: {exc}") from exc
    finally:
        pdf.close()
    return ParsedDocument(format=DocumentFormat.PDF, title=title, sections=tuple(sections))


def _pdf_page_text(pdf: Any, index: int) -> str:
    page = pdf[index]
    try:
        textpage = page.get_textpage()
        try:
            return _normalise(str(textpage.get_text_bounded()))
        finally:
            textpage.close()
    finally:
        page.close()


def _zip_entries(data: bytes) -> list[str] | None:
    """The names in a zip archive, or None when it cannot be read."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None


def _parse_docx(data: bytes, limits: ParseLimits) -> ParsedDocument:
    import docx
    from lxml.etree import LxmlError

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > limits.max_unpacked_bytes:
            raise DocumentParseError(
                f"DOCX unpacks to {unpacked} bytes > limit of {limits.max_unpacked_bytes} bytes"
            )
        document = docx.Document(io.BytesIO(data))
        title = (document.core_properties.title or "").strip() or None
        sections = tuple(_docx_sections(document))
    except (zipfile.BadZipFile, KeyError, ValueError, LxmlError, OSError) as exc:
        raise DocumentParseError(f"DOCX is corrupt: {exc}") from exc
    return ParsedDocument(format=DocumentFormat.DOCX, title=title, sections=sections)


def _docx_sections(document: DocxDocument) -> Iterator[Section]:
    """Paragraphs and tables in body order; `Heading N` and `Title` styles open sections."""
    from docx.table import Table

    path: list[tuple[int, str]] = []
    lines: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            lines.append(_docx_table_text(block))
            continue
        text = block.text.strip()
        level = _docx_heading_level(block.style.name if block.style is not None else "")
        if level is None or not text:
            lines.append(text)
            continue
        yield Section(text="\n".join(lines).strip(), heading_path=tuple(t for _, t in path))
        lines = []
        path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, text)]
    yield Section(text="\n".join(lines).strip(), heading_path=tuple(t for _, t in path))


def _docx_heading_level(style_name: str) -> int | None:
    if style_name.lower() == "title":
        return 0
    match = _DOCX_HEADING_RE.match(style_name)
    return int(match.group(1)) if match else None


def _docx_table_text(table: Table) -> str:
    """One line per row, cells separated by ` | `; merged cells appear once."""
    rows: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _parse_html(data: bytes) -> ParsedDocument:
    from htmltext.extract import extract_main_text

    page = extract_main_text(data)
    text = _normalise(page.text).strip()
    return ParsedDocument(format=DocumentFormat.HTML, title=page.title, sections=(Section(text=text),))


def _parse_markdown(text: str) -> ParsedDocument:
    """ATX (`# Title`) and setext headings, outside fenced code, become the heading path."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    fence: str | None = None
    title: str | None = None

    def close_section() -> None:
        sections.append(Section(text="\n".join(body).strip(), heading_path=tuple(t for _, t in path)))
        body.clear()

    def open_heading(level: int, heading: str) -> None:
        nonlocal path, title
        close_section()
        path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, heading)]
        if level == 1 and title is None:
            title = heading

    for line in text.split("\n"):
        fence_match = _FENCE_RE.match(line)
        if fence_match:
            marker = fence_match.group(1)[0] * 3
            fence = None if fence == marker else (fence or marker)
        if fence is not None or fence_match:
            body.append(line)
            continue
        atx = _ATX_HEADING_RE.match(line)
        setext = _SETEXT_RE.match(line)
        if atx and (heading := (atx.group(2) or "").strip()):
            open_heading(len(atx.group(1)), heading)
        elif setext and body and body[-1].strip():
            heading = body.pop().strip()
            open_heading(1 if setext.group(1)[0] == "=" else 2, heading)
        else:
            body.append(line)
    close_section()
    return ParsedDocument(format=DocumentFormat.MARKDOWN, title=title, sections=tuple(sections))
