"""The pure status changes of a job: idempotent recording, completion, reconciliation."""

from __future__ import annotations

import msgspec

from proto.common import decode, encode
from proto.jobs import ItemFailure, JobItem, JobKind, JobOptions, JobState, JobStatus
from services.inference.jobs.transitions import mark_running, reconcile_change, record_done, record_failed


def _job(total: int = 3, **changes: object) -> JobStatus:
    status = JobStatus(
        job_id="a" * 32, kind=JobKind.TEXT, total=total, state=JobState.QUEUED, created_at=100.0
    )
    return msgspec.structs.replace(status, **changes)


def test_recording_an_item_twice_counts_it_once() -> None:
    first = record_done(_job(), 1, now=1.0)
    assert first is not None and first.done == (1,) and first.state == JobState.RUNNING
    assert record_done(first, 1, now=2.0) is None


def test_the_last_item_completes_the_job_in_the_same_write() -> None:
    status = _job(total=2)
    for item in (1, 0):
        changed = record_done(status, item, now=1.0)
        assert changed is not None
        status = changed
    assert status.state == JobState.COMPLETED and status.done == (0, 1)


def test_a_failed_item_is_never_recorded_as_done_and_keeps_its_reason() -> None:
    failed = record_failed(_job(total=2), 0, "model failed: boom", attempts=4, now=1.0)
    assert failed is not None
    assert failed.failures == (ItemFailure(item=0, reason="model failed: boom", attempts=4),)
    assert record_done(failed, 0, now=2.0) is None
    assert record_failed(failed, 0, "again", attempts=5, now=2.0) is None
    finished = record_done(failed, 1, now=3.0)
    assert finished is not None and finished.state == JobState.COMPLETED


def test_a_job_whose_items_all_failed_is_failed() -> None:
    status = record_failed(_job(total=1), 0, "bad", attempts=1, now=1.0)
    assert status is not None and status.state == JobState.FAILED and status.reason


def test_a_cancelled_job_records_nothing() -> None:
    cancelled = _job(state=JobState.CANCELLED)
    assert record_done(cancelled, 0, now=1.0) is None
    assert record_failed(cancelled, 0, "x", attempts=1, now=1.0) is None
    assert mark_running(cancelled, now=1.0) is None


def test_mark_running_only_moves_a_queued_job() -> None:
    running = mark_running(_job(), now=1.0)
    assert running is not None and running.state == JobState.RUNNING
    assert mark_running(running, now=2.0) is None


def test_reconcile_finalises_a_finished_job_left_running() -> None:
    stuck = _job(total=2, state=JobState.RUNNING, done=(0, 1), queued_all=True)
    settled = reconcile_change(stuck, items_in_stream=0, now=500.0, queue_grace_s=60.0)
    assert settled is not None and settled.state == JobState.COMPLETED


def test_reconcile_leaves_a_job_with_items_in_the_stream_to_redelivery() -> None:
    running = _job(total=3, state=JobState.RUNNING, done=(0,), queued_all=True)
    assert reconcile_change(running, items_in_stream=2, now=500.0, queue_grace_s=60.0) is None


def test_reconcile_fails_items_no_copy_of_which_is_left() -> None:
    running = _job(total=3, state=JobState.RUNNING, done=(0,), queued_all=True)
    settled = reconcile_change(running, items_in_stream=0, now=500.0, queue_grace_s=60.0)
    assert settled is not None and settled.state == JobState.COMPLETED
    assert [f.item for f in settled.failures] == [1, 2]
    assert all(f.reason.startswith("lost") for f in settled.failures)


def test_reconcile_fails_a_job_its_submitter_never_finished_queuing() -> None:
    half = _job(total=3, queued_all=False, created_at=100.0)
    assert reconcile_change(half, items_in_stream=1, now=120.0, queue_grace_s=60.0) is None
    settled = reconcile_change(half, items_in_stream=1, now=200.0, queue_grace_s=60.0)
    assert settled is not None and settled.state == JobState.FAILED and "queuing" in settled.reason


def test_job_messages_round_trip() -> None:
    item = JobItem(job_id="b" * 32, item=7, kind=JobKind.IMAGE, prompt="a cat", options=JobOptions(width=64))
    assert decode(encode(item), JobItem) == item
    status = _job(done=(0, 2), failures=(ItemFailure(item=1, reason="x"),))
    assert decode(encode(status), JobStatus) == status
    assert status.finished == 3
