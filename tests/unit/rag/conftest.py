"""Documents the rag parsing tests need, made offline (fpdf2, python-docx)."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from docx import Document
from fpdf import FPDF

__all__: list[str] = []


def make_pdf(pages: list[str], *, user_password: str | None = None, title: str | None = None) -> bytes:
    """A PDF with one page per string (Helvetica, latin-1 text)."""
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    if user_password is not None:
        pdf.set_encryption(owner_password="owner-secret", user_password=user_password)
    return bytes(pdf.output())


def make_docx() -> bytes:
    """A DOCX with a title, two heading levels, body text and a table between paragraphs."""
    doc = Document()
    doc.core_properties.title = "Quarterly report"
    doc.add_heading("Introduction", level=1)
    doc.add_paragraph("The introduction explains the plan.")
    doc.add_heading("Results", level=1)
    doc.add_paragraph("Before the table.")
    table = doc.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Region"
    table.cell(0, 1).text = "Sales"
    table.cell(1, 0).text = "North"
    table.cell(1, 1).text = "42"
    doc.add_paragraph("After the table.")
    doc.add_heading("Details", level=2)
    doc.add_paragraph("Fine print lives here.")
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


@pytest.fixture(scope="session")
def three_page_pdf() -> bytes:
    return make_pdf(
        ["First page about apples.", "Second page about bananas.", "Third page about cherries."],
        title="Fruit facts",
    )


@pytest.fixture(scope="session")
def pdf_maker() -> Callable[[list[str]], bytes]:
    return make_pdf


@pytest.fixture(scope="session")
def encrypted_pdf() -> bytes:
    return make_pdf(["Secret text."], user_password="user-secret")


@pytest.fixture(scope="session")
def docx_bytes() -> bytes:
    return make_docx()
