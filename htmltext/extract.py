"""Main text, title and language of an HTML page.

:func:`extract_main_text` is synchronous and CPU-bound (about 15-30 ms a
page): services call it through :class:`htmltext.pool.ExtractorPool` so that
parsing never blocks an event loop. It never raises on bad input: broken,
empty or non-HTML input gives an :class:`ExtractedPage` with empty text.
"""

from __future__ import annotations

import re

import msgspec
from lxml import etree
from trafilatura import load_html

from htmltext.language import LanguageSettings, page_language
from htmltext.main_text import MainTextSettings, main_text

__all__ = ["ExtractedPage", "ExtractionSettings", "extract_main_text", "page_title"]

_SPACES_RE = re.compile(r"\s+")
_TITLE_XPATHS = (
    "//meta[@property='og:title']/@content",
    "string(//title)",
    "string(//h1)",
)


class ExtractionSettings(msgspec.Struct, frozen=True):
    """Every limit of extraction, with defaults that suit a laptop."""

    # Larger inputs are cut to this many characters (bytes) before parsing.
    max_input_chars: int = 5_000_000
    # Titles longer than this are cut: some pages put a paragraph in <title>.
    max_title_chars: int = 300
    main_text: MainTextSettings = msgspec.field(default_factory=MainTextSettings)
    language: LanguageSettings = msgspec.field(default_factory=LanguageSettings)


class ExtractedPage(msgspec.Struct, frozen=True):
    """What a page says: its title, its main text and its language (ISO 639-1)."""

    title: str | None
    text: str
    language: str | None


_EMPTY_PAGE = ExtractedPage(title=None, text="", language=None)


def _first_text(tree: etree._Element, xpath: str) -> str:
    found = tree.xpath(xpath)
    # "string(...)" gives one string, an attribute path gives a list of them.
    for value in found if isinstance(found, list) else [found]:
        text = _SPACES_RE.sub(" ", str(value)).strip()
        if text:
            return text
    return ""


def page_title(tree: etree._Element, max_chars: int = 300) -> str | None:
    """The page's title: ``og:title``, else ``<title>``, else the first ``<h1>``."""
    for xpath in _TITLE_XPATHS:
        title = _first_text(tree, xpath)
        if title:
            return title[:max_chars]
    return None


def _parse(html: str | bytes, max_chars: int) -> etree._Element | None:
    if not html or not isinstance(html, str | bytes):
        return None
    try:
        # trafilatura's loader guesses the encoding of bytes, repairs common
        # breakage and refuses input that is not HTML (returns None).
        tree = load_html(html[:max_chars])
    except (etree.LxmlError, ValueError, TypeError):
        return None
    return tree


def extract_main_text(
    html: str | bytes,
    *,
    url: str | None = None,
    settings: ExtractionSettings | None = None,
) -> ExtractedPage:
    """Extract title, main text and language; empty text when there is none.

    Never raises on broken HTML: empty, undecodable or non-HTML input (plain
    text, JSON, binary) gives an :class:`ExtractedPage` with empty text.
    """
    limits = settings or ExtractionSettings()
    tree = _parse(html, limits.max_input_chars)
    if tree is None:
        return _EMPTY_PAGE
    title = page_title(tree, limits.max_title_chars)
    text = main_text(tree, url=url, title=title, settings=limits.main_text)
    language = page_language(tree, text, limits.language)
    return ExtractedPage(title=title, text=text, language=language)
