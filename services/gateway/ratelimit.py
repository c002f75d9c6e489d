"""Per-key rate limits that hold exactly across gateway replicas.

Each key's window lives in a NATS key-value bucket shared by every replica
and is changed only by compare-and-set (`create`, or `update` with the
revision read), so two replicas can never both spend the last request of a
window: the loser of a race re-reads and decides again. A window is a
fixed minute that starts with the key's first request after the previous
window ended, so a burst is never split across two windows.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from runtime.errors import Unavailable
from services.gateway.errors import RateLimited

__all__ = ["RateLimiter", "WINDOW_S", "client_key"]

WINDOW_S = 60.0
_UNSAFE_KEY_CHARS = re.compile(r"[^-_=.a-zA-Z0-9]")


class _Window(msgspec.Struct, frozen=True):
    start: float  # Unix time of the window's first request
    count: int  # requests admitted in it


class RateLimiter:
    """Admits at most `per_minute` requests per client key per window."""

    def __init__(
        self,
        bucket: KeyValue,
        per_minute: int,
        *,
        max_attempts: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._bucket = bucket
        self._limit = per_minute
        self._max_attempts = max_attempts
        self._clock = clock

    async def admit(self, client: str) -> int:
        """Count one request of `client`; raise `RateLimited` when its window is used up.

        Returns how many requests are left in the window.
        """
        key = client_key(client)
        for _ in range(self._max_attempts):
            now = self._clock()
            try:
                entry = await self._bucket.get(key)
            except KeyNotFoundError:  # includes deleted and expired keys
                entry = None
            try:
                if entry is None or not entry.value:
                    await self._bucket.create(key, _encode(_Window(now, 1)))
                    return self._limit - 1
                window = msgspec.json.decode(entry.value, type=_Window)
                if now >= window.start + WINDOW_S:
                    window = _Window(now, 1)
                elif window.count >= self._limit:
                    retry_after = max(1, math.ceil(window.start + WINDOW_S - now))
                    raise RateLimited(
                        f"rate limit of {self._limit} requests a minute reached; retry in {retry_after} s",
                        retry_after_s=retry_after,
                    )
                else:
                    window = _Window(window.start, window.count + 1)
                await self._bucket.update(key, _encode(window), last=entry.revision)
                return self._limit - window.count
            except KeyWrongLastSequenceError:
                continue  # another replica changed the window first: read it again
        raise Unavailable(
            f"rate limiter: the window of this key changed {self._max_attempts} times during one check"
        )


def client_key(client: str) -> str:
    """A key-value key for a client id (an API key id or an address)."""
    return "c." + (_UNSAFE_KEY_CHARS.sub("_", client) or "_")


def _encode(window: _Window) -> bytes:
    return msgspec.json.encode(window)
