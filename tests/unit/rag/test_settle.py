"""The quiet timer behind the LanceDB store's upkeep: once per quiet spell, never lost, cancellable."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from services.rag.store.settle import QuietTimer


async def test_many_marks_settle_once_per_collection() -> None:
    settled: list[str] = []

    async def settle(collection: str) -> None:
        settled.append(collection)

    timer = QuietTimer(settle, quiet_s=0.01)
    for _ in range(5):
        timer.mark("a")
    timer.mark("b")
    await timer.wait()
    assert sorted(settled) == ["a", "b"]


async def test_a_mark_during_the_upkeep_starts_another_wait() -> None:
    calls: list[str] = []

    async def settle(collection: str) -> None:
        calls.append(collection)
        if len(calls) == 1:
            timer.mark(collection)  # a write landing while the first upkeep runs

    timer = QuietTimer(settle, quiet_s=0.01)
    timer.mark("a")
    await timer.wait()
    assert calls == ["a", "a"]


async def test_the_wait_restarts_with_every_mark() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    settled_at: list[float] = []

    async def settle(collection: str) -> None:
        settled_at.append(loop.time())

    timer = QuietTimer(settle, quiet_s=0.05)
    timer.mark("a")
    loop.call_later(0.03, timer.mark, "a")  # a second write while the first wait runs
    await timer.wait()
    assert len(settled_at) == 1
    assert settled_at[0] - started >= 0.08  # 0.05 after the second mark, not the first


async def test_cancel_drops_the_pending_upkeep() -> None:
    settled: list[str] = []

    async def settle(collection: str) -> None:
        settled.append(collection)

    timer = QuietTimer(settle, quiet_s=3600)
    timer.mark("a")
    await timer.cancel()
    await timer.wait()
    assert settled == []


async def test_a_failed_upkeep_is_logged_and_the_timer_goes_on() -> None:
    calls: list[str] = []

    async def settle(collection: str) -> None:
        calls.append(collection)
        if len(calls) == 1:
            raise RuntimeError("the disk is full")

    timer = QuietTimer(settle, quiet_s=0.01)
    with capture_logs() as logs:
        timer.mark("a")
        await timer.wait()
        timer.mark("a")
        await timer.wait()
    assert calls == ["a", "a"]
    assert [(log["event"], log["collection"]) for log in logs] == [("settle_failed", "a")]
    assert "the disk is full" in str(logs[0]["exc_info"])
