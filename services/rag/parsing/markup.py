"""HTML and Markdown uploads: the two formats whose structure is written in the text.

HTML is read by `htmltext` (the main-text extraction the scraper uses too),
so navigation and boilerplate are left out. Markdown's ATX (`# Title`) and
setext headings, outside fenced code, make the heading path of its sections.
"""

from __future__ import annotations

import re

from services.rag.parsing.formats import DocumentFormat
from services.rag.parsing.sections import ParsedDocument, Section
from services.rag.parsing.text import normalise_text

__all__ = ["parse_html", "parse_markdown"]

_ATX_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT_RE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def parse_html(data: bytes) -> ParsedDocument:
    """The page's main text as one section, titled by the page."""
    from htmltext.extract import extract_main_text

    page = extract_main_text(data)
    text = normalise_text(page.text).strip()
    return ParsedDocument(format=DocumentFormat.HTML, title=page.title, sections=(Section(text=text),))


def parse_markdown(text: str) -> ParsedDocument:
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
