"""Which uploads the gateway takes: PDF, DOCX, HTML, Markdown and plain text.

The type is decided from the bytes first (magic numbers), then the declared
content type, then the file name's extension; anything else is refused
before it is stored, with the list of accepted types.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePath

from services.gateway.errors import UnsupportedDocumentType

__all__ = ["ACCEPTED", "DOCX", "HTML", "MARKDOWN", "PDF", "TEXT", "detect_content_type"]

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
MARKDOWN = "text/markdown"
TEXT = "text/plain"
ACCEPTED = "PDF, DOCX, HTML, Markdown, plain text"

_DECLARED = {
    "application/pdf": PDF,
    "application/x-pdf": PDF,
    DOCX: DOCX,
    "text/html": HTML,
    "application/xhtml+xml": HTML,
    "text/markdown": MARKDOWN,
    "text/x-markdown": MARKDOWN,
    "text/plain": TEXT,
}
_EXTENSIONS = {
    ".pdf": PDF,
    ".docx": DOCX,
    ".html": HTML,
    ".htm": HTML,
    ".xhtml": HTML,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".txt": TEXT,
    ".text": TEXT,
}
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body")
_TEXT_SNIFF_BYTES = 8192


def detect_content_type(data: bytes, *, file_name: str, declared: str | None) -> str:
    """The canonical content type of an upload, or `UnsupportedDocumentType` saying why not."""
    head = data[:1024]
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"PK\x03\x04"):
        if _is_docx(data):
            return DOCX
        raise UnsupportedDocumentType(
            f"{file_name!r} is a zip archive but not a DOCX document; accepted: {ACCEPTED}"
        )
    by_type = _DECLARED.get((declared or "").split(";")[0].strip().lower())
    by_name = _EXTENSIONS.get(PurePath(file_name).suffix.lower())
    claimed = by_name if by_type in (None, TEXT) and by_name is not None else by_type
    if claimed in (PDF, DOCX):
        raise UnsupportedDocumentType(f"{file_name!r} is named or declared a {_name(claimed)} but is not one")
    if not _looks_like_text(data):
        raise UnsupportedDocumentType(
            f"{file_name!r} (content type {declared!r}) is binary, not a supported type; accepted: {ACCEPTED}"
        )
    if claimed is not None:
        return claimed
    if head.lstrip().lower().startswith(_HTML_STARTS):
        return HTML
    raise UnsupportedDocumentType(
        f"unsupported document type for {file_name!r} (content type {declared!r}); accepted: {ACCEPTED}"
    )


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _looks_like_text(data: bytes) -> bool:
    sample = data[:_TEXT_SNIFF_BYTES]
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        if exc.start < len(sample) - 3:
            return _is_legacy_text(sample)
    return True


def _is_legacy_text(sample: bytes) -> bool:
    # Latin-1 and Windows-1252 text: mostly printable bytes, few control characters.
    controls = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 12, 13))
    return controls <= len(sample) // 100


def _name(content_type: str) -> str:
    return "PDF" if content_type == PDF else "DOCX"
