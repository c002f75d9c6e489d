"""Settings of the batch-job worker (loaded from ``INFERENCE_JOBS_<FIELD>`` variables)."""

from __future__ import annotations

import msgspec

__all__ = ["JobWorkerSettings"]


class JobWorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Every limit and timeout of the batch-job worker; defaults suit a laptop."""

    enabled: bool = True  # run the batch-job worker in this inference replica
    max_in_flight: int = 4  # batch items worked at once per replica (chat has INFERENCE_MAX_IN_FLIGHT)
    fetch_wait_s: float = 2.0  # how long one pull request waits when the queue is empty
    ack_wait_s: float = 30.0  # an item neither acked nor in progress is redelivered after this
    in_progress_every_s: float = 10.0  # in-progress ack period of a running item (capped at ack_wait_s/3)
    max_deliver: int = 4  # attempts of an item before it is failed and dead-lettered
    retry_delay_s: float = 2.0  # redelivery delay after a failed attempt (doubles per attempt)
    retry_delay_max_s: float = 30.0  # longest redelivery delay
    item_timeout_s: float = 120.0  # deadline of one item at Triton
    nats_timeout_s: float = 5.0  # deadline of one JetStream call (state, result, ack)
    cas_attempts: int = 100  # compare-and-set retries of one job-state write
    reconcile_every_s: float = 60.0  # reconciliation period (it also runs at start); 0 = start only
    queue_grace_s: float = 120.0  # a job whose items were not all queued after this is failed

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise ValueError("INFERENCE_JOBS_MAX_IN_FLIGHT must be at least 1")
        if self.max_deliver < 1:
            raise ValueError("INFERENCE_JOBS_MAX_DELIVER must be at least 1")
        if self.ack_wait_s <= 0 or self.fetch_wait_s <= 0:
            raise ValueError("INFERENCE_JOBS_ACK_WAIT_S and _FETCH_WAIT_S must be positive")

    @property
    def heartbeat_s(self) -> float:
        """How often a running item tells JetStream it is still being worked."""
        return min(self.in_progress_every_s, self.ack_wait_s / 3)
