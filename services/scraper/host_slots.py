"""The per-host bound: at most `per_host_concurrency` requests to one host at a time.

Each attempt of a fetch, and each robots.txt load, holds one of its host's
slots. A host's semaphore lives only while someone uses it, so fetching
pages from many hosts never grows a table without end.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["HostSlots"]


class HostSlots:
    """A semaphore per host, dropped when nobody uses it (no unbounded growth)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, host: str) -> AsyncIterator[None]:
        """Hold one of the host's slots for the block."""
        semaphore, users = self._slots.get(host) or (asyncio.Semaphore(self._size), 0)
        self._slots[host] = (semaphore, users + 1)
        try:
            async with semaphore:
                yield
        finally:
            semaphore, users = self._slots[host]
            if users <= 1:
                del self._slots[host]
            else:
                self._slots[host] = (semaphore, users - 1)
