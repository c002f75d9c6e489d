"""DOCX uploads, read with python-docx: paragraphs and tables in body order.

`Title` and `Heading N` paragraph styles open sections and make the heading
path; tables are kept, one line per row. The archive's unpacked size is
checked before python-docx opens it, so a zip bomb is refused unread.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import TYPE_CHECKING

from services.rag.errors import DocumentParseError
from services.rag.parsing.formats import DocumentFormat
from services.rag.parsing.sections import ParsedDocument, Section

if TYPE_CHECKING:
    from collections.abc import Iterator

    from docx.document import Document as DocxDocument
    from docx.table import Table

__all__ = ["parse_docx"]

_HEADING_RE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)


def parse_docx(data: bytes, *, max_unpacked_bytes: int) -> ParsedDocument:
    """The document's sections, titled by its core properties; corrupt files are a clear error."""
    import docx
    from lxml.etree import LxmlError

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > max_unpacked_bytes:
            raise DocumentParseError(
                f"DOCX unpacks to {unpacked} bytes > limit of {max_unpacked_bytes} bytes"
            )
        document = docx.Document(io.BytesIO(data))
        title = (document.core_properties.title or "").strip() or None
        sections = tuple(_sections(document))
    except (zipfile.BadZipFile, KeyError, ValueError, LxmlError, OSError) as exc:
        raise DocumentParseError(f"DOCX is corrupt: {exc}") from exc
    return ParsedDocument(format=DocumentFormat.DOCX, title=title, sections=sections)


def _sections(document: DocxDocument) -> Iterator[Section]:
    """Paragraphs and tables in body order; `Heading N` and `Title` styles open sections."""
    from docx.table import Table

    path: list[tuple[int, str]] = []
    lines: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            lines.append(_table_text(block))
            continue
        text = block.text.strip()
        level = _heading_level(block.style.name if block.style is not None else "")
        if level is None or not text:
            lines.append(text)
            continue
        yield Section(text="\n".join(lines).strip(), heading_path=tuple(t for _, t in path))
        lines = []
        path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, text)]
    yield Section(text="\n".join(lines).strip(), heading_path=tuple(t for _, t in path))


def _heading_level(style_name: str) -> int | None:
    if style_name.lower() == "title":
        return 0
    match = _HEADING_RE.match(style_name)
    return int(match.group(1)) if match else None


def _table_text(table: Table) -> str:
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
