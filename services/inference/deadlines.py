"""One deadline per Triton request, and everything that waits within it.

The deadline is the earlier of the caller's timeout and the service's limit
for that kind of request (`deadline_within`). A request waits for one of
`max_in_flight` slots (the waiting ones are the queue the stats report), may
be retried while Triton is unreachable, and is sent with the time that is
left; all of it comes out of the same deadline, a time on the event loop's
clock.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

from services.inference.errors import InferenceTimeout, TritonUnavailable

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = [
    "InFlightSlots",
    "deadline_within",
    "raise_if_cancelled",
    "retry_while_unavailable",
    "seconds_left",
    "time_left",
]

_T = TypeVar("_T")


class InFlightSlots:
    """At most `size` requests at Triton at once; the others wait, counted as queued."""

    def __init__(self, size: int) -> None:
        self._free = asyncio.Semaphore(size)
        self.in_flight = 0
        self.queued = 0

    @asynccontextmanager
    async def hold(self, deadline: float) -> AsyncIterator[None]:
        """Hold one slot; waiting for it counts as queued, and past the deadline is a timeout."""
        self.queued += 1
        try:
            async with asyncio.timeout_at(deadline):
                await self._free.acquire()
        except TimeoutError:
            raise InferenceTimeout("timed out waiting for a free inference slot") from None
        finally:
            self.queued -= 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._free.release()


def deadline_within(timeout_s: float, limit_s: float) -> float:
    """A request's deadline: the caller's `timeout_s` from now, but never past the service's `limit_s`."""
    return asyncio.get_running_loop().time() + min(timeout_s, limit_s)


def seconds_left(deadline: float) -> float:
    """Seconds until ``deadline`` on the loop's clock (negative once passed)."""
    return deadline - asyncio.get_running_loop().time()


def time_left(deadline: float) -> float:
    """The seconds a call may still take; `InferenceTimeout` once the deadline has passed."""
    remaining = seconds_left(deadline)
    if remaining <= 0:
        raise InferenceTimeout("the inference deadline passed")
    return remaining


def raise_if_cancelled() -> None:
    """Raise `CancelledError` if this task was asked to stop, even if a library swallowed the request.

    grpc.aio's stream set-up (`_prepare_rpc`) catches the `CancelledError` of a
    cancel that lands while a stream starts ("no one will await this task"), yet
    the stream's first read does await it: our task then goes on, and sees an
    ordinary RPC error that looks worth a retry. `Task.cancelling()` still counts
    the request, so every retry loop asks it before trying again.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def retry_while_unavailable(
    call: Callable[[], Awaitable[_T]], deadline: float, *, backoff_s: float, backoff_max_s: float
) -> _T:
    """Await `call`, again after a doubling pause while Triton is unavailable and time is left."""
    backoff = backoff_s
    while True:
        try:
            return await call()
        except TritonUnavailable:
            raise_if_cancelled()
            if seconds_left(deadline) <= backoff:
                raise
        await asyncio.sleep(backoff)  # the retry backoff while Triton is away
        backoff = min(backoff * 2, backoff_max_s)
