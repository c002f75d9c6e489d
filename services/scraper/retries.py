"""When a fetch tries again, and how long it waits first.

Only transient failures are retried: a refused or failed connection, and the
statuses a busy or restarting server answers (429, 502, 503, 504). The wait
is what the server asks for (`Retry-After`, in seconds or as a date), else
a backoff doubling per attempt; a wait longer than `max_retry_after_s`, or
one that would end past the caller's deadline, gives up at once instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp

    from services.scraper.errors import FetchError

__all__ = ["TRANSIENT_STATUSES", "RetryLater", "retry_after", "wait_before_retry"]

TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


class RetryLater(Exception):
    """The attempt failed transiently; wait ``delay_s`` (None: the backoff) then try again."""

    def __init__(self, error: FetchError, delay_s: float | None = None) -> None:
        super().__init__(error.reason)
        self.error = error
        self.delay_s = delay_s


def wait_before_retry(
    retry: RetryLater, attempt: int, *, backoff_s: float, max_wait_s: float, now: float, deadline: float
) -> float | None:
    """Seconds to wait before the attempt after `attempt` (0-based), or None to give up now."""
    delay_s = retry.delay_s
    if delay_s is None:
        delay_s = backoff_s * 2**attempt
    if delay_s > max_wait_s or now + delay_s >= deadline:
        return None
    return delay_s


def retry_after(response: aiohttp.ClientResponse) -> float | None:
    """Seconds the server asks us to wait (Retry-After), or None to use the backoff."""
    header = response.headers.get("Retry-After", "").strip()
    if not header:
        return None
    if header.isdigit():
        return float(header)
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
