"""robots.txt: one verdict per origin, loaded once, cached for a while.

Convention chosen (the common one, as Google documents it):

* 2xx: the file is parsed with :mod:`urllib.robotparser` and our user agent's rules apply;
* 4xx (404, 401, 403, ...): no restrictions, everything is allowed;
* 5xx: the site is unhealthy, everything is disallowed until the verdict expires;
* the fetch fails (connection, DNS, timeout, refused by the SSRF guard): allowed, since
  the page fetch itself will meet the same failure or guard; this verdict is not cached,
  so a site that comes back has its robots.txt read on the next fetch.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.robotparser import RobotFileParser

from yarl import URL

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["RobotsCache", "RobotsFile", "robots_url"]


class RobotsFile:
    """What a fetch of robots.txt gave: a status (None when the fetch failed) and the text."""

    __slots__ = ("status", "text")

    def __init__(self, status: int | None, text: str = "") -> None:
        self.status = status
        self.text = text


def robots_url(url: URL) -> URL:
    """The robots.txt URL of the origin (scheme, host, port) of ``url``."""
    return url.with_path("/robots.txt").with_query(None).with_fragment(None).with_user(None)


# Rules of one origin: parsed rules, or True (everything allowed) / False (nothing allowed).
_Rules = RobotFileParser | bool


def _rules_from(robots: RobotsFile) -> _Rules:
    if robots.status is None:
        return True
    if 200 <= robots.status < 300:
        parser = RobotFileParser()
        parser.parse(robots.text.splitlines())
        return parser
    # 5xx: disallowed; 4xx, or a 1xx/3xx that gave no file: no restrictions
    return robots.status < 500


class RobotsCache:
    """Per-fetcher cache of robots.txt rules keyed by origin; concurrent misses share one load."""

    def __init__(self, *, user_agent: str, ttl_s: float, max_entries: int) -> None:
        self._user_agent = user_agent
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, _Rules]] = {}
        self._loading: dict[str, asyncio.Lock] = {}

    async def allowed(self, url: URL, load: Callable[[URL], Awaitable[RobotsFile]]) -> bool:
        """Whether our user agent may fetch ``url``; ``load`` fetches a robots.txt URL."""
        origin = robots_url(url)
        key = str(origin)
        rules = self._fresh(key)
        if rules is None:
            lock = self._loading.setdefault(key, asyncio.Lock())
            try:
                async with lock:
                    rules = self._fresh(key)
                    if rules is None:
                        robots = await load(origin)
                        rules = _rules_from(robots)
                        if robots.status is not None:  # a failed load is retried next time
                            self._store(key, rules)
            finally:
                if self._loading.get(key) is lock and not lock.locked():
                    del self._loading[key]
        if isinstance(rules, bool):
            return rules
        return rules.can_fetch(self._user_agent, str(url))

    def _fresh(self, key: str) -> _Rules | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, rules = entry
        if expires_at < asyncio.get_running_loop().time():
            del self._entries[key]
            return None
        return rules

    def _store(self, key: str, rules: _Rules) -> None:
        self._entries.pop(key, None)
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]  # oldest first
        self._entries[key] = (asyncio.get_running_loop().time() + self._ttl_s, rules)
