"""Per-key rate limits that hold exactly across gateway replicas.

Each key's window lives in a NATS key-value bucket shared by every replica
and is changed only by compare-and-set (`runtime.kv.upsert_value`), so two
replicas can never both spend the last request of a window: the loser of a
race re-reads and decides again. A window is a
fixed minute that starts with the key's first request after the previous
window ended, so a burst is never split across two windows.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

import msgspec
from nats.js.kv import KeyValue

from runtime.errors import Unavailable
from runtime.kv import TooManyConflicts, upsert_value
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
        try:
            window = await upsert_value(
                self._bucket, client_key(client), _Window, self._one_more, attempts=self._max_attempts
            )
        except TooManyConflicts:
            raise Unavailable(
                f"rate limiter: the window of this key changed {self._max_attempts} times during one check"
            ) from None
        return self._limit - window.count

    def _one_more(self, window: _Window | None) -> _Window:
        """The key's window with one more request (a new window when none is open); `RateLimited` if full."""
        now = self._clock()  # read again on every attempt: a retry may open the next window
        if window is None or now >= window.start + WINDOW_S:
            return _Window(now, 1)
        if window.count >= self._limit:
            retry_after = max(1, math.ceil(window.start + WINDOW_S - now))
            raise RateLimited(
                f"rate limit of {self._limit} requests a minute reached; retry in {retry_after} s",
                retry_after_s=retry_after,
            )
        return _Window(window.start, window.count + 1)


def client_key(client: str) -> str:
    """A key-value key for a client id (an API key id or an address)."""
    return "c." + (_UNSAFE_KEY_CHARS.sub("_", client) or "_")
