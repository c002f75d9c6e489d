"""An event-loop lag probe: how late the loop wakes a timer, sampled cheaply.

A service whose loop is blocked (CPU work on it, a blocking call) answers
late; the probe measures exactly that, from inside the service.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math

from proto.stats import LoopLagStats

__all__ = ["LoopLagProbe"]


class LoopLagProbe:
    """Sleeps ``interval_s`` again and again and records how late the loop woke it.

    Cheap: one timer per interval and a bounded deque of the newest ``max_samples``.
    """

    def __init__(self, interval_s: float, max_samples: int) -> None:
        self._interval_s = interval_s
        self._samples: collections.deque[float] = collections.deque(maxlen=max(1, max_samples))
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling in the running loop (no-op when the interval is 0 or it runs)."""
        if self._interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._sample_forever(), name="loop-lag-probe")

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def reset(self) -> None:
        """Forget the samples taken so far."""
        self._samples.clear()

    def stats(self) -> LoopLagStats:
        """Percentiles of the samples kept."""
        ordered = sorted(self._samples)
        if not ordered:
            return LoopLagStats(probe_interval_s=self._interval_s)
        return LoopLagStats(
            loop_lag_samples=len(ordered),
            loop_lag_p50_ms=round(1000 * _percentile(ordered, 0.50), 2),
            loop_lag_p99_ms=round(1000 * _percentile(ordered, 0.99), 2),
            loop_lag_max_ms=round(1000 * ordered[-1], 2),
            probe_interval_s=self._interval_s,
        )

    async def _sample_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._interval_s
            await asyncio.sleep(self._interval_s)
            self._samples.append(max(0.0, loop.time() - due))


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]
