"""The event-loop lag probe: a blocked event loop shows up as lag; reset starts a new window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from runtime.looplag import LoopLagProbe


async def _until(condition: Callable[[], bool]) -> None:
    # The probe has no event to wait on (it must stay cheap): poll; pytest-timeout bounds this.
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.002)


async def _until_samples(probe: LoopLagProbe, count: int) -> None:
    await _until(lambda: probe.stats().loop_lag_samples >= count)


async def test_a_blocked_loop_is_measured() -> None:
    probe = LoopLagProbe(interval_s=0.005, max_samples=100)
    probe.start()
    try:
        await _until_samples(probe, 1)
        time.sleep(0.08)  # noqa: ASYNC251 - blocks the loop on purpose: the lag to measure
        await _until_samples(probe, 2)
        stats = probe.stats()
        assert stats.loop_lag_max_ms >= 70
        assert stats.loop_lag_p99_ms == stats.loop_lag_max_ms
        assert stats.probe_interval_s == 0.005
        probe.reset()
        assert probe.stats().loop_lag_samples == 0
    finally:
        await probe.stop()


async def test_probe_switched_off_reports_nothing() -> None:
    probe = LoopLagProbe(interval_s=0.0, max_samples=10)
    probe.start()
    await probe.stop()
    assert probe.stats().loop_lag_samples == 0


async def test_samples_are_bounded() -> None:
    probe = LoopLagProbe(interval_s=0.001, max_samples=3)
    probe.start()
    try:
        await _until_samples(probe, 3)
        time.sleep(0.05)  # noqa: ASYNC251 - a lag to recognise: the sample that must be dropped
        await _until(lambda: probe.stats().loop_lag_max_ms >= 40)  # it was taken...
        await _until(lambda: probe.stats().loop_lag_max_ms < 40)  # ...and pushed out by newer ones
        assert probe.stats().loop_lag_samples == 3
    finally:
        await probe.stop()
