"""Which uploads the gateway accepts, decided from bytes, content type and name."""

from __future__ import annotations

import io
import zipfile

import pytest

from services.gateway.errors import UnsupportedDocumentType
from services.gateway.filetypes import DOCX, HTML, MARKDOWN, PDF, TEXT, detect_content_type


def docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "name", "declared", "expected"),
    [
        (b"%PDF-1.7\n...", "report.bin", "application/octet-stream", PDF),
        (b"%PDF-1.4", "x.txt", "text/plain", PDF),
        (docx_bytes(), "memo.docx", None, DOCX),
        (b"# Title\n\ntext", "notes.md", "application/octet-stream", MARKDOWN),
        (b"# Title", "notes.md", "text/plain", MARKDOWN),
        (b"plain words", "a.txt", None, TEXT),
        (b"<!DOCTYPE html><p>hi</p>", "page", None, HTML),
        (b"<p>hi</p>", "page.html", "text/html; charset=utf-8", HTML),
        ("café crème".encode("latin-1"), "menu.txt", "text/plain", TEXT),
    ],
)
def test_accepted(data: bytes, name: str, declared: str | None, expected: str) -> None:
    assert detect_content_type(data, file_name=name, declared=declared) == expected


@pytest.mark.parametrize(
    ("data", "name", "declared"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "a.png", "image/png"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "a.txt", "text/plain"),  # binary, whatever its name
        (b"PK\x03\x04" + bytes(60), "a.docx", DOCX),  # a broken zip
        (b"just text", "a.pdf", "application/pdf"),  # named PDF, is not one
        (b"some words", "data.csv", "text/csv"),
        (b"\x7fELF\x02\x01\x01" + bytes(200), "tool", None),
    ],
)
def test_refused_with_a_reason(data: bytes, name: str, declared: str | None) -> None:
    with pytest.raises(UnsupportedDocumentType) as refused:
        detect_content_type(data, file_name=name, declared=declared)
    assert name in refused.value.detail
