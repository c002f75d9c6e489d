"""Scraped pages cached in a NATS JetStream key-value bucket, with a TTL.

Keys are the SHA-256 of the normalised URL (KV keys allow only a few
characters); values are `ScrapedPage` JSON. The bucket's own TTL expires
entries, so every replica shares one cache and nothing needs sweeping.
"""

from __future__ import annotations

import asyncio
import hashlib

import msgspec
from nats.errors import Error as NatsError
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from proto.context import ScrapedPage
from runtime.logging import get_logger

__all__ = ["PageCache"]

_log = get_logger(__name__)


class PageCache:
    """Get and put pages by normalised URL; a cache failure is a miss, never an error.

    Every read and write is bounded by ``timeout_s`` (``SCRAPER_CACHE_TIMEOUT_S``), so a
    bus that is away costs a page that much time, not its whole deadline.
    """

    def __init__(self, bucket: KeyValue, *, timeout_s: float) -> None:
        self._bucket = bucket
        self._timeout_s = timeout_s

    async def get(self, normalised_url: str) -> ScrapedPage | None:
        """The cached page, or None."""
        try:
            async with asyncio.timeout(self._timeout_s):
                entry = await self._bucket.get(_key(normalised_url))
        except (KeyNotFoundError, KeyDeletedError):
            return None
        except (NatsError, TimeoutError) as exc:
            _log.warning("cache read failed", url=normalised_url, error=str(exc) or type(exc).__name__)
            return None
        if entry.value is None:
            return None
        try:
            return msgspec.json.decode(entry.value, type=ScrapedPage)
        except msgspec.DecodeError as exc:  # e.g. written by an older, incompatible version
            _log.warning("cache entry unreadable", url=normalised_url, error=str(exc))
            return None

    async def put(self, normalised_url: str, page: ScrapedPage) -> None:
        """Store a page (the bucket's TTL expires it)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._bucket.put(_key(normalised_url), msgspec.json.encode(page))
        except (NatsError, TimeoutError) as exc:
            _log.warning("cache write failed", url=normalised_url, error=str(exc) or type(exc).__name__)


def _key(normalised_url: str) -> str:
    return hashlib.sha256(normalised_url.encode()).hexdigest()
