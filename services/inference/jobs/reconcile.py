"""Reconciliation: no job stays `running` forever because the worker that ran it died."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from proto.jobs import TERMINAL_STATES, JobStatus
from runtime.logging import get_logger
from services.inference.jobs.store import JobStore
from services.inference.jobs.transitions import reconcile_change

__all__ = ["reconcile_jobs"]

_log = get_logger(__name__)


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
