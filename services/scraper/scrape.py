"""Read every link of a request: find, check the cache, fetch, extract, within the caller's deadline.

One deadline covers everything a URL costs (cache read, fetch, extraction in the process
pool): a URL unfinished at the deadline is reported as a ``timeout`` and its work is
cancelled, so the reply always leaves before the caller stops waiting. Fan-out is bounded
by ``max_urls`` per request, the fetcher's global and per-host semaphores and the
extraction pool's workers.

Requests for a URL that is being read already join that read instead of starting another
(by normalised URL, per replica): a link pasted into many chats at once is fetched and
extracted once, which spares both the site and our CPU. A joined read runs to its own
starter's deadline; a caller whose deadline is later reads again on its own if it ended
in a timeout.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from htmltext.pool import ExtractionError
from proto.common import ErrorCode
from proto.context import ScrapedPage, ScrapeReply, ScrapeRequest, UrlError
from runtime.errors import ServiceError
from runtime.logging import get_logger
from services.scraper.errors import FetchError, InvalidUrl
from services.scraper.urls import find_urls, normalise_url

if TYPE_CHECKING:
    from htmltext.pool import ExtractorPool
    from services.scraper.cache import PageCache
    from services.scraper.fetch import PageFetcher
    from services.scraper.settings import ScraperSettings

__all__ = ["BadScrapeRequest", "Scraper"]

_log = get_logger(__name__)


class BadScrapeRequest(ServiceError):
    """The request cannot be served as asked (e.g. no time budget at all)."""

    code = ErrorCode.BAD_REQUEST


@dataclass(frozen=True, slots=True)
class _Target:
    """One URL to read: as the caller wrote it, and its cache key."""

    url: str
    key: str


@dataclass(frozen=True, slots=True)
class _Reading:
    """A read under way, which callers of the same URL join."""

    task: asyncio.Task[ScrapedPage | UrlError]
    deadline: float


class Scraper:
    """Answers scrape requests; one per process, sharing its fetcher, pool and cache."""

    def __init__(
        self,
        settings: ScraperSettings,
        fetcher: PageFetcher,
        extractor: ExtractorPool,
        cache: PageCache | None = None,
    ) -> None:
        self._settings = settings
        self._fetcher = fetcher
        self._extractor = extractor
        self._cache = cache
        # Cache writes run after the reply is sent; kept here so they are not collected early.
        self._cache_writes: set[asyncio.Task[None]] = set()
        self._readings: dict[str, _Reading] = {}  # by cache key: the reads under way

    def use_cache(self, cache: PageCache) -> None:
        """Cache pages from now on (the bucket exists once the bus is connected)."""
        self._cache = cache

    async def scrape(self, request: ScrapeRequest) -> ScrapeReply:
        """Per-URL pages and errors; URLs unfinished at the deadline are reported as timeouts.

        Raises BadScrapeRequest when ``timeout_ms`` is not positive.
        """
        if request.timeout_ms <= 0:
            raise BadScrapeRequest(f"timeout_ms must be positive, got {request.timeout_ms}")
        loop = asyncio.get_running_loop()
        budget_s = min(request.timeout_ms / 1000, self._settings.total_timeout_s)
        deadline = loop.time() + max(0.0, budget_s - self._settings.reply_margin_s)
        targets, errors = self._targets(request)
        outcomes = await asyncio.gather(*(self._read_by(target, deadline) for target in targets))
        pages = [outcome for outcome in outcomes if isinstance(outcome, ScrapedPage)]
        errors += [outcome for outcome in outcomes if isinstance(outcome, UrlError)]
        _log.info("scraped", pages=len(pages), errors=len(errors), budget_s=round(budget_s, 3))
        return ScrapeReply(pages=pages, errors=errors)

    def _targets(self, request: ScrapeRequest) -> tuple[list[_Target], list[UrlError]]:
        """The distinct URLs to read (at most ``max_urls``), and errors for malformed ones."""
        max_urls = self._settings.max_urls
        if request.urls:
            if len(request.urls) > max_urls:
                _log.info("urls ignored", given=len(request.urls), max_urls=max_urls)
            candidates = request.urls[:max_urls]
        else:
            candidates = find_urls(request.prompt, max_urls=max_urls)
        targets: list[_Target] = []
        errors: list[UrlError] = []
        seen: set[str] = set()
        for url in candidates:
            try:
                key = normalise_url(url)
            except ValueError as exc:
                errors.append(UrlError(url=url, code=InvalidUrl.code, detail=str(exc)))
                continue
            if key not in seen:
                seen.add(key)
                targets.append(_Target(url, key))
        return targets, errors

    async def _read_by(self, target: _Target, deadline: float) -> ScrapedPage | UrlError:
        """The page or its error by `deadline`, joining a read of the same URL under way."""
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    reading = self._reading(target, deadline)
                    # Shielded: a caller that stops waiting never cancels a read others share.
                    outcome = await asyncio.shield(reading.task)
                    if not (_timed_out(outcome) and reading.deadline < deadline):
                        break  # else it ended at an earlier caller's deadline: read again
        except TimeoutError:
            return _timeout(target)
        return msgspec.structs.replace(outcome, url=target.url)  # as this caller wrote it

    def _reading(self, target: _Target, deadline: float) -> _Reading:
        """The read under way for the target's URL, or a new one bounded by `deadline`."""
        reading = self._readings.get(target.key)
        if reading is None or reading.task.done():
            task = asyncio.create_task(self._read_within(target, deadline))
            reading = self._readings[target.key] = _Reading(task, deadline)
            task.add_done_callback(functools.partial(self._forget, target.key))
        return reading

    def _forget(self, key: str, task: asyncio.Task[ScrapedPage | UrlError]) -> None:
        reading = self._readings.get(key)
        if reading is not None and reading.task is task:
            del self._readings[key]

    async def _read_within(self, target: _Target, deadline: float) -> ScrapedPage | UrlError:
        try:
            async with asyncio.timeout_at(deadline):
                return await self._read(target, deadline)
        except TimeoutError:
            return _timeout(target)
        except FetchError as exc:
            return UrlError(url=target.url, code=exc.code, detail=exc.reason)
        except ExtractionError as exc:
            _log.warning("extraction failed", url=target.url, detail=exc.detail)
            return UrlError(url=target.url, code="extraction_failed", detail=exc.detail)

    async def _read(self, target: _Target, deadline: float) -> ScrapedPage | UrlError:
        cache = self._cache
        if cache is not None and (cached := await cache.get(target.key)) is not None:
            return msgspec.structs.replace(cached, url=target.url, cached=True)
        remaining_s = deadline - asyncio.get_running_loop().time()
        fetched = await self._fetcher.fetch(target.url, timeout_s=remaining_s)
        # Cancelling at the deadline drops a page still queued for the pool; one already
        # being parsed finishes in its worker and is discarded (workers are bounded).
        extracted = await self._extractor.extract(fetched.text, url=fetched.final_url)
        if not extracted.text.strip():
            return UrlError(url=target.url, code="no_text", detail="the page has no readable main text")
        page = ScrapedPage(
            url=target.url,
            final_url=fetched.final_url,
            title=extracted.title,
            text=extracted.text,
            language=extracted.language,
        )
        if cache is not None:
            self._write_later(cache, target.key, page)
        return page

    def _write_later(self, cache: PageCache, key: str, page: ScrapedPage) -> None:
        """Cache a page without making the caller wait for the write."""
        task = asyncio.create_task(cache.put(key, page))
        self._cache_writes.add(task)
        task.add_done_callback(functools.partial(self._written, key))

    def _written(self, key: str, task: asyncio.Task[None]) -> None:
        self._cache_writes.discard(task)
        # `PageCache.put` logs the failures it expects; anything else would be lost with the task.
        if not task.cancelled() and (error := task.exception()) is not None:
            _log.error("cache write crashed", url=key, exc_info=error)

    async def close(self) -> None:
        """Let pending cache writes finish (each is bounded by ``cache_timeout_s``; failures are logged)."""
        if self._cache_writes:
            await asyncio.gather(*self._cache_writes, return_exceptions=True)


def _timeout(target: _Target) -> UrlError:
    return UrlError(url=target.url, code="timeout", detail="not read before the caller's deadline")


def _timed_out(outcome: ScrapedPage | UrlError) -> bool:
    return isinstance(outcome, UrlError) and outcome.code == "timeout"
