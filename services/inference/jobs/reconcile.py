"""Reconciliation: no job stays `running` forever because the worker that ran it died.

Every replica reconciles once at start (a restarted replica settles what its
predecessor left at once); after that, one replica per period does, the one
that takes the period's lease: reading every job record is work that
replicas need not repeat.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyWrongLastSequenceError

from proto.jobs import TERMINAL_STATES, JobStatus
from proto.subjects import JOB_RECONCILE_LEASE_BUCKET
from runtime.jetstream import open_key_value
from runtime.logging import get_logger
from services.inference.jobs.store import JobStore
from services.inference.jobs.transitions import reconcile_change

if TYPE_CHECKING:
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue

__all__ = ["ReconcileLease", "reconcile_jobs"]

_log = get_logger(__name__)
_LEASE_KEY = "holder"


class ReconcileLease:
    """One replica per period: whoever creates the lease key first; the bucket's TTL ends it.

    The TTL is shorter than the period, so the key is gone before the holder's next turn
    and any replica may take it then. Losing a lease only skips one period's run.
    """

    def __init__(self, bucket: KeyValue, holder: str) -> None:
        self._bucket = bucket
        self._holder = holder

    @classmethod
    async def open(cls, js: JetStreamContext, *, period_s: float, holder: str) -> ReconcileLease:
        """The lease bucket (created with a TTL of 0.8 periods by the first replica)."""
        config = KeyValueConfig(
            bucket=JOB_RECONCILE_LEASE_BUCKET,
            history=1,
            ttl=max(1.0, period_s * 0.8),
            storage=StorageType.MEMORY,
        )
        return cls(await open_key_value(js, config), holder)

    async def acquire(self) -> bool:
        """True if this replica holds the lease now (it reconciles this period)."""
        try:
            await self._bucket.create(_LEASE_KEY, self._holder.encode())
        except KeyWrongLastSequenceError:  # another replica holds it
            return False
        return True


async def reconcile_jobs(
    store: JobStore, *, queue_grace_s: float, on_change: Callable[[JobStatus], Awaitable[None]]
) -> int:
    """Settle every unfinished job no worker can finish; returns how many changed.

    Safe to run on every replica at once: each change is a compare-and-set.
    """
    changed = 0
    for job_id in await store.job_ids():
        status = await store.status(job_id)
        if status is None or status.state in TERMINAL_STATES:
            continue
        in_stream = await store.items_in_stream(job_id)

        def settle(current: JobStatus, now: float, in_stream: int = in_stream) -> JobStatus | None:
            return reconcile_change(current, in_stream, now, queue_grace_s)

        outcome = await store.update(job_id, settle)
        if outcome is not None and outcome[1]:
            changed += 1
            new = outcome[0]
            _log.warning(
                "job reconciled", job_id=job_id, state=new.state, done=len(new.done), failed=len(new.failures)
            )
            await on_change(new)
    return changed
