"""A job's status as the gateway reads and changes it in the job-state bucket.

Every write is a compare-and-set on the key's revision, retried on conflict
(`runtime.kv.change_value`, which the workers' `services/inference/jobs/store.py`
uses too), so the gateway's changes (queued, cancelled, failed to queue)
never overwrite an item a worker has just recorded. The changes themselves
are pure functions: the new status, or None when there is nothing to change.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import msgspec

from proto.jobs import TERMINAL_STATES, JobProgress, JobState, JobStatus
from runtime.errors import NotFound, Unavailable
from runtime.kv import TooManyConflicts, change_value, read_value

if TYPE_CHECKING:
    from collections.abc import Callable

    from nats.js.kv import KeyValue

__all__ = [
    "change_status",
    "is_job_id",
    "mark_cancelled",
    "mark_failed",
    "mark_queued_all",
    "progress",
    "read_status",
]

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def is_job_id(job_id: str) -> bool:
    """Whether `job_id` has the shape of the ids the gateway gives (anything else is no job)."""
    return _JOB_ID.match(job_id) is not None


async def read_status(bucket: KeyValue, job_id: str) -> tuple[JobStatus, int] | None:
    """The job's status and its revision, or None when there is no such job."""
    if not is_job_id(job_id):
        return None
    return await read_value(bucket, job_id, JobStatus)


async def change_status(
    bucket: KeyValue, job_id: str, change: Callable[[JobStatus], JobStatus | None], *, attempts: int
) -> JobStatus:
    """Apply `change` by compare-and-set, retried up to `attempts` times; the status now."""
    if not is_job_id(job_id):
        raise NotFound(f"no job {job_id!r}")
    try:
        outcome = await change_value(bucket, job_id, JobStatus, change, attempts=attempts)
    except TooManyConflicts as exc:
        raise Unavailable(f"job {job_id}: too many concurrent updates, try again") from exc
    if outcome is None:
        raise NotFound(f"no job {job_id!r}")
    return outcome.value


def progress(status: JobStatus) -> JobProgress:
    """The job's progress event for its status."""
    return JobProgress(
        job_id=status.job_id,
        state=status.state,
        done=len(status.done),
        failed=len(status.failures),
        total=status.total,
    )


def mark_failed(status: JobStatus, reason: str) -> JobStatus | None:
    """The job failed for `reason` (a finished job stays as it is)."""
    if status.state in TERMINAL_STATES:
        return None
    return msgspec.structs.replace(status, state=JobState.FAILED, reason=reason, updated_at=time.time())


def mark_queued_all(status: JobStatus) -> JobStatus | None:
    """Every item of the job is in the queue."""
    return (
        None
        if status.queued_all
        else msgspec.structs.replace(status, queued_all=True, updated_at=time.time())
    )


def mark_cancelled(status: JobStatus) -> JobStatus | None:
    """The owner cancelled the job (a finished job stays as it is)."""
    if status.state in TERMINAL_STATES:
        return None
    return msgspec.structs.replace(
        status, state=JobState.CANCELLED, reason="cancelled by its owner", updated_at=time.time()
    )
