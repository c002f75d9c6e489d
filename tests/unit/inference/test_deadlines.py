"""Retries within a deadline stop when their task is cancelled, even if a library swallowed the cancel.

grpc.aio's stream set-up catches the `CancelledError` of a cancel that lands
while a stream starts; our task then sees an RPC error instead. `Swallower`
below does the same thing, so the behaviour is tested without timing luck
(the real race showed in about 1 run in 25 of test_handlers' cancel test on
a busy machine).
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from services.inference.deadlines import deadline_within, raise_if_cancelled, retry_while_unavailable
from services.inference.errors import TritonUnavailable

pytestmark = pytest.mark.timeout(30)


class Swallower:
    """A call that, like grpc.aio's `_prepare_rpc`, lets a cancel die inside a task of its own."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.calls = 0

    async def _prepare(self) -> None:
        self.started.set()
        with contextlib.suppress(asyncio.CancelledError):  # "no one will await this task"
            await asyncio.Event().wait()

    async def __call__(self) -> None:
        self.calls += 1
        await asyncio.create_task(self._prepare())  # the caller's cancel lands on this task
        raise TritonUnavailable("the stream was cancelled")  # what the caller sees instead


async def test_the_swallowing_is_real_the_task_goes_on_without_the_check() -> None:
    swallower = Swallower()

    async def plain() -> str:
        with contextlib.suppress(TritonUnavailable):
            await swallower()
        return "went on"

    task = asyncio.create_task(plain())
    await swallower.started.wait()
    task.cancel()
    assert await task == "went on"  # the cancel was lost: why the retry loops check for it


async def test_a_swallowed_cancel_stops_the_retries() -> None:
    swallower = Swallower()
    deadline = asyncio.get_running_loop().time() + 25
    task = asyncio.create_task(
        retry_while_unavailable(swallower, deadline, backoff_s=0.01, backoff_max_s=0.01)
    )
    await swallower.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert swallower.calls == 1  # no retry after the cancel


async def test_raise_if_cancelled_is_silent_when_nobody_asked() -> None:
    raise_if_cancelled()


async def test_a_deadline_is_the_callers_or_the_services_limit_whichever_comes_first() -> None:
    loop = asyncio.get_running_loop()
    before = loop.time()
    callers = deadline_within(5.0, 60.0)
    limits = deadline_within(60.0, 5.0)
    after = loop.time()
    assert before + 5.0 <= callers <= after + 5.0
    assert before + 5.0 <= limits <= after + 5.0
