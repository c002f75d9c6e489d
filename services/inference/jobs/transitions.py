"""How a job's `JobStatus` changes: pure functions, applied by compare-and-set.

Each returns the new status, or None when there is nothing to change (the
caller then writes nothing). Recording an item is idempotent: `done` and
`failures` are sets of item numbers, so a redelivered item is never counted
twice, whichever replica records it.
"""

from __future__ import annotations

import msgspec

from proto.jobs import TERMINAL_STATES, ItemFailure, JobState, JobStatus

__all__ = [
    "mark_running",
    "record_done",
    "record_failed",
    "reconcile_change",
]

_MAX_REASON_CHARS = 300  # a failure reason kept in the job record


def mark_running(status: JobStatus, now: float) -> JobStatus | None:
    """A replica started an item of a queued job."""
    if status.state != JobState.QUEUED:
        return None
    return msgspec.structs.replace(status, state=JobState.RUNNING, updated_at=now)


def record_done(status: JobStatus, item: int, now: float) -> JobStatus | None:
    """An item's result is stored."""
    if status.state in TERMINAL_STATES or item in status.done or _failed(status, item):
        return None
    done = tuple(sorted((*status.done, item)))
    return _finish_if_complete(msgspec.structs.replace(status, done=done, updated_at=now))


def record_failed(status: JobStatus, item: int, reason: str, attempts: int, now: float) -> JobStatus | None:
    """An item failed for good."""
    if status.state in TERMINAL_STATES or item in status.done or _failed(status, item):
        return None
    failure = ItemFailure(item=item, reason=reason[:_MAX_REASON_CHARS], attempts=attempts)
    failures = tuple(sorted((*status.failures, failure), key=lambda f: f.item))
    return _finish_if_complete(msgspec.structs.replace(status, failures=failures, updated_at=now))


def reconcile_change(
    status: JobStatus, items_in_stream: int, now: float, queue_grace_s: float
) -> JobStatus | None:
    """Settle a job that no worker will finish: the check run at start and periodically.

    - every item finished but the state says otherwise: finalise it;
    - every item was queued, none is left in the stream, yet some never
      finished: they are lost (nothing can redeliver them), fail them;
    - the submitter died before queuing every item: fail the job.
    Items still in the stream are left alone: JetStream redelivers them.
    """
    if status.state in TERMINAL_STATES:
        return None
    if status.finished >= status.total:
        return _finish_if_complete(msgspec.structs.replace(status, updated_at=now))
    if status.queued_all and items_in_stream == 0:
        known = set(status.done) | {f.item for f in status.failures}
        lost = tuple(
            ItemFailure(item=n, reason="lost: no copy of the item is left in the queue")
            for n in range(status.total)
            if n not in known
        )
        failures = tuple(sorted((*status.failures, *lost), key=lambda f: f.item))
        return _finish_if_complete(msgspec.structs.replace(status, failures=failures, updated_at=now))
    if not status.queued_all and now - status.created_at > queue_grace_s:
        return msgspec.structs.replace(
            status,
            state=JobState.FAILED,
            reason="the submitter stopped before queuing every item",
            updated_at=now,
        )
    return None


def _failed(status: JobStatus, item: int) -> bool:
    return any(f.item == item for f in status.failures)


def _finish_if_complete(status: JobStatus) -> JobStatus:
    if status.finished < status.total:
        if status.state == JobState.QUEUED:
            return msgspec.structs.replace(status, state=JobState.RUNNING)
        return status
    state = JobState.COMPLETED if status.done else JobState.FAILED
    reason = "" if status.done else "every item failed"
    return msgspec.structs.replace(status, state=state, reason=status.reason or reason)
