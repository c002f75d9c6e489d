"""Main-text extraction on a parsed page: trafilatura, then two small general steps.

1. trafilatura in precision mode, comments excluded: the best of the
   configurations measured on the benchmark (see ``htmltext/README.md``).
   Only when it finds nothing is the default (balanced) mode tried, so that
   a page with some text never comes back empty.
2. The headline is dropped from the first lines of the text when it repeats
   the page's title or one of its ``<h1>``: the title is returned on its own.
3. Whitespace is tidied: one space between words, no blank lines.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import msgspec
from trafilatura import bare_extraction

if TYPE_CHECKING:
    from collections.abc import Iterable

    from lxml import etree

__all__ = ["MainTextSettings", "drop_repeated_headline", "main_text", "tidy_whitespace"]

# Same tokens as the benchmark's metric: a line "repeats" the title when its
# words do, whatever the punctuation, quotes or case.
_WORD_RE = re.compile(r"\w+")
_SPACES_RE = re.compile(r"[^\S\n]+")


class MainTextSettings(msgspec.Struct, frozen=True):
    """How main text is chosen."""

    # trafilatura's precision mode: less boilerplate, sometimes less text.
    favor_precision: bool = True
    # How many leading lines may be dropped as a repeated headline.
    headline_lines: int = 3


def _words(text: str) -> tuple[str, ...]:
    return tuple(word.casefold() for word in _WORD_RE.findall(text))


def _trafilatura_text(tree: etree._Element, url: str | None, *, precision: bool) -> str:
    # bare_extraction copies a tree it is given, so one parse serves several runs.
    document = bare_extraction(
        tree,  # type: ignore[arg-type]  # an lxml HtmlElement, as its loader returns
        url=url,
        favor_precision=precision,
        include_comments=False,
        # deduplicate uses a process-wide cache: output would depend on earlier pages.
        deduplicate=False,
        with_metadata=False,
    )
    text = getattr(document, "text", None)
    return text if isinstance(text, str) else ""


def drop_repeated_headline(text: str, headlines: Iterable[str], max_lines: int = 3) -> str:
    """Remove, among the first ``max_lines`` lines, those that repeat a headline."""
    known = {words for words in map(_words, headlines) if words}
    if not known or max_lines <= 0:
        return text
    lines = text.split("\n")
    head = [line for line in lines[:max_lines] if _words(line) not in known]
    return "\n".join(head + lines[max_lines:])


def tidy_whitespace(text: str) -> str:
    """One space between words, each line stripped, empty lines dropped."""
    lines = (_SPACES_RE.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _headlines(tree: etree._Element) -> list[str]:
    """Texts of the page's ``<h1>`` elements."""
    found = tree.xpath("//h1")
    elements = found if isinstance(found, list) else []
    return [" ".join(str(el.xpath("string()")).split()) for el in elements]


def main_text(
    tree: etree._Element,
    *,
    url: str | None = None,
    title: str | None = None,
    settings: MainTextSettings | None = None,
) -> str:
    """The page's main text, one paragraph a line ("" when there is none)."""
    options = settings or MainTextSettings()
    text = _trafilatura_text(tree, url, precision=options.favor_precision)
    if not text.strip() and options.favor_precision:
        text = _trafilatura_text(tree, url, precision=False)
    headlines = [*_headlines(tree), *([title] if title else [])]
    text = drop_repeated_headline(tidy_whitespace(text), headlines, options.headline_lines)
    return text
