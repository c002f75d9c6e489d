"""Parsing uploads: formats, detection, limits and clean errors."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

import pytest

from services.rag.errors import DocumentParseError, UnsupportedDocumentType
from services.rag.parsing import DocumentFormat, ParseLimits, detect_format, parse_document

LIMITS = ParseLimits()


def test_pdf_gives_one_section_per_page_with_page_numbers(three_page_pdf: bytes) -> None:
    doc = parse_document(three_page_pdf, file_name="fruit.pdf", content_type="application/pdf", limits=LIMITS)
    assert doc.format is DocumentFormat.PDF
    assert doc.title == "Fruit facts"
    assert [s.page for s in doc.sections] == [1, 2, 3]
    assert "bananas" in doc.sections[1].text
    assert "apples" not in doc.sections[1].text


def test_a_pdf_named_txt_is_parsed_as_pdf(three_page_pdf: bytes) -> None:
    doc = parse_document(three_page_pdf, file_name="notes.txt", content_type="text/plain", limits=LIMITS)
    assert doc.format is DocumentFormat.PDF


def test_encrypted_pdf_is_refused_with_reason(encrypted_pdf: bytes) -> None:
    with pytest.raises(DocumentParseError, match="PDF is encrypted"):
        parse_document(encrypted_pdf, file_name="secret.pdf", content_type="application/pdf", limits=LIMITS)


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n garbage that is not a pdf \x00\xff" * 10,
        b"this is not a pdf at all, just words",
        bytes(range(256)) * 40,
    ],
)
def test_corrupt_pdf_is_a_clean_error(data: bytes) -> None:
    with pytest.raises(DocumentParseError, match="PDF is corrupt"):
        parse_document(data, file_name="broken.pdf", content_type="application/pdf", limits=LIMITS)


def test_truncated_pdf_is_a_clean_error(three_page_pdf: bytes) -> None:
    with pytest.raises(DocumentParseError):
        parse_document(
            three_page_pdf[: len(three_page_pdf) // 3], file_name="cut.pdf", content_type=None, limits=LIMITS
        )


def test_pdf_page_limit(three_page_pdf: bytes) -> None:
    with pytest.raises(DocumentParseError, match="too many pages: 3 > limit of 2"):
        parse_document(
            three_page_pdf, file_name="f.pdf", content_type=None, limits=ParseLimits(max_pdf_pages=2)
        )


def test_pdf_without_text_says_so(pdf_maker: Callable[[list[str]], bytes]) -> None:
    with pytest.raises(DocumentParseError, match="document has no text"):
        parse_document(pdf_maker([""]), file_name="scan.pdf", content_type=None, limits=LIMITS)


@pytest.mark.parametrize("data", [b"", b"  \n\t "])
def test_empty_file_is_refused(data: bytes) -> None:
    with pytest.raises(DocumentParseError, match="document has no text"):
        parse_document(data, file_name="empty.txt", content_type="text/plain", limits=LIMITS)


def test_file_size_limit() -> None:
    with pytest.raises(DocumentParseError, match="file too large: 11 bytes > limit of 10 bytes"):
        parse_document(
            b"hello world", file_name="a.txt", content_type=None, limits=ParseLimits(max_file_bytes=10)
        )


def test_docx_headings_and_table_in_body_order(docx_bytes: bytes) -> None:
    doc = parse_document(docx_bytes, file_name="report.docx", content_type=None, limits=LIMITS)
    assert doc.format is DocumentFormat.DOCX
    assert doc.title == "Quarterly report"
    by_path = {s.heading_path: s.text for s in doc.sections}
    assert by_path[("Introduction",)] == "The introduction explains the plan."
    assert by_path[("Results",)] == "Before the table.\nRegion | Sales\nNorth | 42\nAfter the table."
    assert by_path[("Results", "Details")] == "Fine print lives here."


def test_zip_that_is_not_docx_is_unsupported() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(UnsupportedDocumentType):
        parse_document(out.getvalue(), file_name="a.docx", content_type=None, limits=LIMITS)


def test_corrupt_docx_is_a_clean_error(docx_bytes: bytes) -> None:
    with pytest.raises(DocumentParseError, match="DOCX is corrupt"):
        parse_document(docx_bytes[:2000], file_name="a.docx", content_type=None, limits=LIMITS)


def test_ole_file_named_docx_is_reported_encrypted_or_legacy() -> None:
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600
    with pytest.raises(DocumentParseError, match="encrypted"):
        parse_document(data, file_name="locked.docx", content_type=None, limits=LIMITS)


MARKDOWN = """# Guide

Intro paragraph.

## Install

Run the installer.

```sh
# not a heading
pip install thing
```

### Linux

Use the package.

## Usage
Call it.

Appendix
--------

Extra notes.
"""


def test_markdown_headings_become_heading_paths() -> None:
    doc = parse_document(MARKDOWN.encode(), file_name="guide.md", content_type=None, limits=LIMITS)
    assert doc.format is DocumentFormat.MARKDOWN
    assert doc.title == "Guide"
    paths = [s.heading_path for s in doc.sections]
    assert paths == [
        ("Guide",),
        ("Guide", "Install"),
        ("Guide", "Install", "Linux"),
        ("Guide", "Usage"),
        ("Guide", "Appendix"),
    ]
    assert "# not a heading" in doc.sections[1].text
    assert doc.sections[3].text == "Call it."


def test_text_plain_with_md_extension_is_markdown() -> None:
    doc = parse_document(b"# T\n\nbody", file_name="x.md", content_type="text/plain", limits=LIMITS)
    assert doc.format is DocumentFormat.MARKDOWN


def test_latin1_text_is_decoded() -> None:
    text = (
        "Le café était très animé ce matin-là. Les élèves révisaient leurs leçons "
        "près de la fenêtre, où la lumière d'été entrait à flots. Ça sentait le pain grillé.\n"
    )
    doc = parse_document(text.encode("latin-1"), file_name="notes.txt", content_type=None, limits=LIMITS)
    assert doc.format is DocumentFormat.TEXT
    assert doc.sections[0].text == text.strip()


def test_utf8_bom_and_crlf_are_normalised() -> None:
    doc = parse_document(
        "\ufeffline one\r\nline two".encode(), file_name="a.txt", content_type=None, limits=LIMITS
    )
    assert doc.sections[0].text == "line one\nline two"


def test_html_uses_main_text_extraction() -> None:
    article = " ".join(["The committee approved the new budget after a long debate."] * 8)
    html = (
        f"<html><head><title>Budget news</title></head><body><nav>Home | About</nav>"
        f"<article><h1>Budget approved</h1><p>{article}</p></article></body></html>"
    )
    doc = parse_document(html.encode(), file_name="page", content_type="text/html", limits=LIMITS)
    assert doc.format is DocumentFormat.HTML
    assert "committee approved the new budget" in doc.sections[0].text


def test_html_sniffed_without_type_or_extension() -> None:
    assert (
        detect_format(b"<!DOCTYPE html><html></html>", file_name="page", content_type=None)
        is DocumentFormat.HTML
    )


@pytest.mark.parametrize(
    ("data", "name", "ctype"),
    [
        (b"just some words", "blob.bin", "application/octet-stream"),
        (b"\x89PNG\r\n\x1a\n....", "image.txt", "text/plain"),
        (b"words", "sheet.xlsx", None),
    ],
)
def test_unknown_types_are_unsupported(data: bytes, name: str, ctype: str | None) -> None:
    with pytest.raises(UnsupportedDocumentType):
        parse_document(data, file_name=name, content_type=ctype, limits=LIMITS)


def test_results_and_errors_cross_a_process_boundary(three_page_pdf: bytes) -> None:
    import pickle

    doc = parse_document(three_page_pdf, file_name="f.pdf", content_type=None, limits=LIMITS)
    assert pickle.loads(pickle.dumps(doc)) == doc
    error = pickle.loads(pickle.dumps(DocumentParseError("PDF is encrypted")))
    assert (type(error), error.reason) == (DocumentParseError, "PDF is encrypted")
