"""The seed chapter's scraper (example 5-6): a URL regex, aiohttp, `asyncio.gather`.

The one change: `parse_inner_text` uses the project's extractor
(`htmltext.extract_main_text`) where the seed reads BeautifulSoup's
`div#bodyContent`. The seed's parser finds no text at all on the benchmark
pages (F1 0.000 in notes/libraries-measured.md: they are not Wikipedia
pages), so the baseline would answer without the page and do less work;
with the same extractor both sides read the same text. Like the seed's
BeautifulSoup call, it runs inline in the coroutine, on the event loop.
"""

from __future__ import annotations

import asyncio
import re

import aiohttp

from htmltext.extract import extract_main_text

__all__ = ["extract_urls", "fetch", "fetch_all", "parse_inner_text"]

_URL_PATTERN = r"(?P<url>https?:\/\/[^\s]+)"  # the seed's pattern, as printed


def extract_urls(text: str) -> list[str]:
    """Every http(s) URL in `text` (the seed's regex)."""
    return re.findall(_URL_PATTERN, text)


def parse_inner_text(html_string: str) -> tuple[str | None, str]:
    """The page's title and main text."""
    page = extract_main_text(html_string)
    return page.title, page.text


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[str | None, str]:
    """GET one page and parse it."""
    async with session.get(url) as response:
        html_string = await response.text()
        return parse_inner_text(html_string)


async def fetch_all(urls: list[str]) -> list[tuple[str, str | None, str]]:
    """(url, title, text) of every page that could be read; failures are dropped, as in the seed."""
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(*[fetch(session, url) for url in urls], return_exceptions=True)
    return [
        (url, result[0], result[1])
        for url, result in zip(urls, results, strict=True)
        if isinstance(result, tuple)
    ]
