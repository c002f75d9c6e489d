"""Run a collection's upkeep once its writes have gone quiet.

LanceDB leaves each write in its own fragment, and rows not yet folded into
the full-text index are scanned on every query. After a user uploads a few
dozen documents, that made each hybrid search cost 65 ms of CPU instead of
9 ms (91 documents, 589 chunks), until enough rows came to trigger the
store's size threshold, which might be never. So every write marks its
collection, and `quiet_s` after the last mark the store settles it (compacts
and reindexes, about 0.1 s for those 589 chunks). One task per collection
waits, however many writes come; a write during the upkeep starts a new wait.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from runtime.logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["QuietTimer"]

_log = get_logger(__name__)


class QuietTimer:
    """Calls `settle(collection)` once `quiet_s` have passed without `mark(collection)`."""

    def __init__(self, settle: Callable[[str], Awaitable[None]], quiet_s: float) -> None:
        self._settle = settle
        self._quiet_s = quiet_s
        self._last_mark: dict[str, float] = {}
        self._waiting: dict[str, asyncio.Task[None]] = {}

    def mark(self, collection: str) -> None:
        """Note a write to `collection`: its upkeep runs `quiet_s` after the last one."""
        loop = asyncio.get_running_loop()
        self._last_mark[collection] = loop.time()
        if collection not in self._waiting:
            self._waiting[collection] = loop.create_task(self._wait_then_settle(collection))

    async def wait(self) -> None:
        """Return once every upkeep that was due has run (tests, an orderly stop)."""
        while self._waiting:
            await asyncio.gather(*self._waiting.values(), return_exceptions=True)

    async def cancel(self) -> None:
        """Drop the pending upkeep (the store is closing)."""
        tasks = list(self._waiting.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._waiting.clear()

    async def _wait_then_settle(self, collection: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            # A timer whose deadline moves with every mark, not a wait for a condition.
            while (remaining := self._last_mark[collection] + self._quiet_s - loop.time()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(remaining)
        finally:
            self._waiting.pop(collection, None)  # a mark from here on starts a new wait
        try:
            await self._settle(collection)
        except Exception as exc:  # nobody awaits this task for its result: say so here, once
            _log.error("settle_failed", collection=collection, exc_info=exc)
