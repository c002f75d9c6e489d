"""Figures a service reports about itself on `<service>.stats` (benchmarks read them)."""

from __future__ import annotations

from proto.common import Message

__all__ = ["InferenceStats", "LoopLagStats", "StatsRequest"]


class StatsRequest(Message, tag="stats.request"):
    """Ask a scraper replica for its figures; ``reset`` starts a new measurement window."""

    reset: bool = False


class LoopLagStats(Message, tag="stats.loop_lag"):
    """Event-loop lag of one replica since the last reset (0 samples when the probe is off)."""

    loop_lag_samples: int = 0
    loop_lag_p50_ms: float = 0.0
    loop_lag_p99_ms: float = 0.0
    loop_lag_max_ms: float = 0.0
    probe_interval_s: float = 0.0


class InferenceStats(Message, tag="stats.inference"):
    """One inference replica's load: Triton requests in flight, waiting, and streams."""

    in_flight: int = 0  # Triton requests running (at most INFERENCE_MAX_IN_FLIGHT)
    queued: int = 0  # requests waiting for an in-flight slot: the queue metric
    generations: int = 0  # token streams being relayed
