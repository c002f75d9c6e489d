"""Which of the formats we read an upload is: magic bytes, then content type, then extension.

The bytes win over what the uploader declares, so a PDF named `.txt` is read
as a PDF; a file that is none of our formats (an image, an archive, a legacy
Office file) is refused here, before any parser sees it.
"""

from __future__ import annotations

import enum
import io
import re
import zipfile
from pathlib import PurePath

from services.rag.errors import DocumentParseError, UnsupportedDocumentType

__all__ = ["DocumentFormat", "detect_format"]


class DocumentFormat(enum.StrEnum):
    """The formats we read."""

    PDF = "pdf"
    DOCX = "docx"
    HTML = "html"
    MARKDOWN = "markdown"
    TEXT = "text"


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


def _zip_entries(data: bytes) -> list[str] | None:
    """The names in a zip archive, or None when it cannot be read."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
