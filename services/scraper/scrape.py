"""Read every link of a prompt: find, check the cache, fetch, extract, within a deadline."""

from __future__ import annotations

import asyncio

import msgspec

from htmltext.pool import ExtractorPool
from proto.context import ScrapedPage, ScrapeReply, ScrapeRequest, UrlError
from runtime.logging import get_logger
from services.scraper.cache import PageCache
from services.scraper.errors import FetchError
from services.scraper.fetch import PageFetcher
from services.scraper.settings import ScraperSettings
from services.scraper.urls import find_urls, normalise_url

__all__ = ["Scraper"]

_log = get_logger(__name__)
# Kept back from the caller's deadline so the reply reaches it in time.
_REPLY_MARGIN_S = 0.05


class Scraper:
    """Answers scrape requests; one per process, sharing its fetcher, pool and cache."""

    def __init__(
        self,
        settings: ScraperSettings,
        fetcher: PageFetcher,
        extractor: ExtractorPool,
        cache: PageCache | None,
    ) -> None:
        self._settings = settings
        self._fetcher = fetcher
        self._extractor = extractor
        self._cache = cache

    def use_cache(self, cache: PageCache) -> None:
        """Cache pages from now on (the bucket exists once the bus is connected)."""
        self._cache = cache

    async def scrape(self, request: ScrapeRequest) -> ScrapeReply:
        """Per-URL pages and errors; URLs unfinished at the deadline are reported as timeouts."""
        urls = request.urls[: self._settings.max_urls] or find_urls(
            request.prompt, max_urls=self._settings.max_urls
        )
        if not urls:
            return ScrapeReply()
        budget_s = max(0.0, request.timeout_ms / 1000 - _REPLY_MARGIN_S)
        outcomes = await asyncio.gather(*(self._read_within(url, budget_s) for url in urls))
        pages = [o for o in outcomes if isinstance(o, ScrapedPage)]
        errors = [o for o in outcomes if isinstance(o, UrlError)]
        _log.info("scraped", pages=len(pages), errors=len(errors))
        return ScrapeReply(pages=pages, errors=errors)

    async def _read_within(self, url: str, budget_s: float) -> ScrapedPage | UrlError:
        try:
            async with asyncio.timeout(budget_s):
                return await self._read(url, budget_s)
        except TimeoutError:
            return UrlError(url=url, code="timeout", detail=f"not read within {budget_s:.2f} s")
        except FetchError as exc:
            return UrlError(url=url, code=exc.code, detail=exc.reason)

    async def _read(self, url: str, budget_s: float) -> ScrapedPage | UrlError:
        key = normalise_url(url)
        if self._cache is not None and (cached := await self._cache.get(key)) is not None:
            return msgspec.structs.replace(cached, url=url, cached=True)
        fetched = await self._fetcher.fetch(url, timeout_s=budget_s)
        extracted = await self._extractor.extract(fetched.text, url=fetched.final_url)
        if not extracted.text.strip():
            return UrlError(url=url, code="no_text", detail="the page has no readable main text")
        page = ScrapedPage(
            url=url,
            final_url=fetched.final_url,
            title=extracted.title,
            text=extracted.text,
            language=extracted.language,
        )
        if self._cache is not None:
            await self._cache.put(key, page)
        return page
