"""Fetch web pages for the scraper: bounded, deadline-bound, SSRF-guarded, decoded to text.

One :class:`PageFetcher` per process owns one aiohttp session. Redirects are followed by
hand so that every hop goes through the SSRF guard and robots.txt again. How a body is
read is in ``body.py``, when an attempt is tried again in ``retries.py``, and the
per-host bound in ``host_slots.py``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp
import msgspec
from yarl import URL

from runtime.logging import get_logger
from services.scraper.body import read_head, read_text
from services.scraper.errors import (
    ConnectFailed,
    DnsFailed,
    FetchError,
    FetchRefused,
    FetchTimeout,
    HttpStatusError,
    InvalidUrl,
    RobotsDisallowed,
    TooManyRedirects,
)
from services.scraper.host_slots import HostSlots
from services.scraper.retries import TRANSIENT_STATUSES, RetryLater, retry_after, wait_before_retry
from services.scraper.robots import RobotsCache, RobotsFile
from services.scraper.ssrf import AddressPolicy, GuardedResolver, HostRefused, literal_host_refusal
from services.scraper.urls import normalise_url

if TYPE_CHECKING:
    from types import TracebackType

    from services.scraper.settings import ScraperSettings

__all__ = ["FetchedPage", "PageFetcher"]

_log = get_logger(__name__)

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_ACCEPT = "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.1"


class FetchedPage(msgspec.Struct, frozen=True):
    """A fetched and decoded page."""

    url: str  # as requested
    final_url: str  # after redirects
    status: int
    content_type: str  # e.g. "text/html"
    text: str  # decoded body


class PageFetcher:
    """Fetches pages over one shared aiohttp session; use ``async with`` or call ``close()``."""

    def __init__(self, settings: ScraperSettings) -> None:
        self._settings = settings
        self._policy = AddressPolicy.from_allow_list(settings.allow_hosts, enabled=settings.ssrf_guard)
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._host_slots = HostSlots(settings.per_host_concurrency)
        self._robots = RobotsCache(
            user_agent=settings.user_agent,
            ttl_s=settings.robots_cache_ttl_s,
            max_entries=settings.robots_cache_size,
        )
        self._request_timeout = aiohttp.ClientTimeout(
            total=None, connect=settings.connect_timeout_s, sock_read=settings.read_timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PageFetcher:
        self._open_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            settings = self._settings
            connector = aiohttp.TCPConnector(
                # With the guard on, every host name resolves through the policy; IP literals
                # never reach a resolver in aiohttp, so _check_url refuses them first.
                resolver=GuardedResolver(self._policy) if settings.ssrf_guard else None,
                limit=settings.max_concurrency,
                limit_per_host=settings.per_host_concurrency,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": settings.user_agent, "Accept": _ACCEPT},
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # a proxy from the environment would bypass the guard
            )
        return self._session

    async def fetch(self, url: str, *, timeout_s: float) -> FetchedPage:
        """Fetch ``url`` within ``timeout_s`` seconds (capped by ``total_timeout_s``)."""
        budget_s = min(timeout_s, self._settings.total_timeout_s)
        deadline = asyncio.get_running_loop().time() + budget_s
        try:
            async with asyncio.timeout_at(deadline):
                async with self._slots:
                    return await self._fetch_following_redirects(url, deadline)
        except TimeoutError as exc:
            raise FetchTimeout(url, f"no complete answer within {budget_s:.3g} s") from exc

    async def _fetch_following_redirects(self, url: str, deadline: float) -> FetchedPage:
        current = self._check_url(url, url)
        visited = {normalise_url(str(current))}
        for _ in range(self._settings.max_redirects + 1):
            if self._settings.respect_robots and not await self._robots.allowed(current, self._load_robots):
                raise RobotsDisallowed(url, f"robots.txt of {current.host} disallows {current}")
            outcome = await self._hop_with_retries(url, current, deadline)
            if isinstance(outcome, FetchedPage):
                return outcome
            current = outcome
            key = normalise_url(str(current))
            if key in visited:
                raise TooManyRedirects(url, f"redirect loop back to {current}")
            visited.add(key)
        raise TooManyRedirects(url, f"more than {self._settings.max_redirects} redirects")

    def _check_url(self, requested: str, target: str | URL) -> URL:
        """Parse an http(s) URL and refuse IP-literal hosts the guard forbids."""
        try:
            parsed = target if isinstance(target, URL) else URL(target.strip())
            host = parsed.raw_host
        except (ValueError, TypeError) as exc:
            raise InvalidUrl(requested, f"malformed URL {target!s}: {exc}") from exc
        if parsed.scheme.lower() not in ("http", "https") or not host:
            raise InvalidUrl(requested, f"not an absolute http(s) URL: {target!s}")
        refusal = literal_host_refusal(host, self._policy)
        if refusal is not None:
            raise FetchRefused(requested, f"destination refused: {refusal}")
        return parsed

    async def _hop_with_retries(self, requested: str, url: URL, deadline: float) -> FetchedPage | URL:
        """One request, retried on transient failures: the page, or where it redirects to."""
        loop = asyncio.get_running_loop()
        for attempt in range(self._settings.retries + 1):
            try:
                async with self._host_slots.hold(url.raw_host or ""):
                    return await self._hop(requested, url, final=attempt == self._settings.retries)
            except RetryLater as retry:
                delay_s = wait_before_retry(
                    retry,
                    attempt,
                    backoff_s=self._settings.retry_backoff_s,
                    max_wait_s=self._settings.max_retry_after_s,
                    now=loop.time(),
                    deadline=deadline,
                )
                if delay_s is None:
                    raise retry.error from None
                await asyncio.sleep(delay_s)
        raise AssertionError("unreachable: the last attempt never raises RetryLater")

    async def _hop(self, requested: str, url: URL, *, final: bool) -> FetchedPage | URL:
        session = self._open_session()
        try:
            async with session.get(url, allow_redirects=False, timeout=self._request_timeout) as response:
                location = response.headers.get("Location")
                if response.status in _REDIRECT_STATUSES and location:
                    return self._check_url(requested, _redirect_target(requested, url, location))
                if response.status in TRANSIENT_STATUSES and not final:
                    raise RetryLater(_status_error(requested, url, response.status), retry_after(response))
                if response.status >= 300:
                    raise _status_error(requested, url, response.status)
                return await self._read_page(requested, url, response)
        except aiohttp.ClientConnectorDNSError as exc:
            raise DnsFailed(requested, f"cannot resolve {url.host}: {exc.os_error}") from exc
        except (aiohttp.ClientConnectorSSLError, aiohttp.ClientConnectorCertificateError) as exc:
            raise ConnectFailed(requested, f"TLS failure with {url.host}: {exc}") from exc
        except aiohttp.ClientConnectorError as exc:
            error = ConnectFailed(requested, f"cannot connect to {url.host}:{url.port}: {exc.os_error}")
            if final:
                raise error from exc
            raise RetryLater(error) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            reason = f"no connection to {url.host} within {self._settings.connect_timeout_s} s"
            raise FetchTimeout(requested, reason) from exc
        except aiohttp.SocketTimeoutError as exc:
            reason = f"{url.host} was silent for {self._settings.read_timeout_s} s"
            raise FetchTimeout(requested, reason) from exc
        except aiohttp.InvalidURL as exc:
            raise InvalidUrl(requested, f"invalid URL {url}: {exc}") from exc
        except HostRefused as exc:  # raised inside aiohttp by GuardedResolver, before any connect
            raise FetchRefused(requested, f"destination refused: {exc.reason}") from None
        except aiohttp.ClientError as exc:
            raise ConnectFailed(requested, f"{type(exc).__name__} from {url.host}: {exc}") from exc

    async def _read_page(self, requested: str, url: URL, response: aiohttp.ClientResponse) -> FetchedPage:
        text = await read_text(requested, url, response, max_bytes=self._settings.max_body_bytes)
        return FetchedPage(
            url=requested,
            final_url=str(url),
            status=response.status,
            content_type=response.content_type.lower(),
            text=text,
        )

    async def _load_robots(self, origin: URL) -> RobotsFile:
        """Fetch a robots.txt (redirects followed and guarded); a failure gives status None.

        The caller's ``asyncio.timeout_at`` bounds the whole load.
        """
        current = origin
        try:
            for _ in range(self._settings.max_redirects + 1):
                current = self._check_url(str(origin), current)
                session = self._open_session()
                async with (
                    self._host_slots.hold(current.raw_host or ""),
                    session.get(current, allow_redirects=False, timeout=self._request_timeout) as response,
                ):
                    location = response.headers.get("Location")
                    if response.status in _REDIRECT_STATUSES and location:
                        current = _redirect_target(str(origin), current, location)
                        continue
                    if response.status >= 300:
                        return RobotsFile(response.status)
                    body = await read_head(response, self._settings.robots_max_bytes)
                    return RobotsFile(response.status, body.decode("utf-8", errors="replace"))
        except (FetchError, aiohttp.ClientError, ValueError) as exc:
            _log.info("robots_unavailable", robots_url=str(origin), error=str(exc))
        return RobotsFile(None)


def _redirect_target(requested: str, url: URL, location: str) -> URL:
    """The absolute URL a Location header points to."""
    try:
        return url.join(URL(location.strip()))
    except (ValueError, TypeError) as exc:
        raise InvalidUrl(requested, f"{url} redirects to a malformed URL {location!r}") from exc


def _status_error(requested: str, url: URL, status: int) -> HttpStatusError:
    return HttpStatusError(requested, f"{url} answered HTTP {status}", status=status)
