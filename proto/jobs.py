"""Batch jobs: many prompts worked in the background, durably, by inference replicas.

A job is submitted to the gateway; it writes the job's `JobStatus` to the
`JOB_STATE_BUCKET` key-value bucket (key: the job id), then publishes one
`JobItem` per prompt to `job_items_subject(job_id)` in the `JOBS_STREAM`
work-queue stream, each with `Nats-Msg-Id` = `item_msg_id(job_id, item)` so a
re-submitted item is dropped by the stream. Inference replicas share one
durable pull consumer; each item's result goes to the `JOB_RESULTS_OBJECTS`
object store under `result_object_name(job_id, item)` before the item is
acked. Every write of a `JobStatus` is a compare-and-set on its revision, and
`done`/`failures` are sets of item numbers, so a redelivered item is never
counted twice. Progress is published as `JobProgress` on
`job_events_subject(job_id)`; an item that failed `max_deliver` times goes to
the dead-letter subject as `JobItemDead`.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from proto.common import Message
from proto.inference import Sampling

__all__ = [
    "ItemFailure",
    "JobItem",
    "JobItemDead",
    "JobKind",
    "JobOptions",
    "JobProgress",
    "JobState",
    "JobStatus",
    "JobSubmitted",
    "TERMINAL_STATES",
    "item_msg_id",
    "result_object_name",
]


class JobKind(enum.StrEnum):
    """What each item of a job produces."""

    TEXT = "text"  # an answer from the `generate` model (UTF-8 text)
    IMAGE = "image"  # a picture from the `image` model (PNG)


class JobState(enum.StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"  # accepted; no replica has started an item yet
    RUNNING = "running"  # at least one item started; not every item finished
    COMPLETED = "completed"  # every item finished, at least one of them with a result
    FAILED = "failed"  # every item failed, or the job could not be queued
    CANCELLED = "cancelled"  # stopped by its owner; remaining items are dropped


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})


class JobOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How each item of a job is generated."""

    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 256  # text items: chunk limit
    width: Annotated[int, msgspec.Meta(ge=16, le=1024)] = 256  # image items: pixels
    height: Annotated[int, msgspec.Meta(ge=16, le=1024)] = 256
    sampling: Sampling = Sampling()  # text items: temperature, stop strings, ... (the model's)


class ItemFailure(msgspec.Struct, frozen=True, kw_only=True):
    """An item that will never have a result, and why."""

    item: int
    reason: str
    attempts: int = 0


class JobStatus(Message, tag="job.status"):
    """A job's state, as kept in the key-value bucket (the only writer is a CAS)."""

    job_id: str
    kind: JobKind
    total: int
    state: JobState
    options: JobOptions = JobOptions()
    done: tuple[int, ...] = ()  # item numbers with a stored result, sorted
    failures: tuple[ItemFailure, ...] = ()  # items that failed for good, sorted by item
    queued_all: bool = False  # every item was published to the stream
    reason: str = ""  # why the job failed or was cancelled
    created_at: float = 0.0  # Unix time
    updated_at: float = 0.0
    # The submitter's tenant: `k<key id>`, or `open` with API keys off (as document ids'
    # scope); "" in jobs from before owners, which are `open`'s.
    owner: str = ""

    @property
    def finished(self) -> int:
        """Items with a result or a final failure."""
        return len(self.done) + len(self.failures)


class JobSubmitted(Message, tag="job.submitted"):
    """The answer to a submission: the job exists and its items are queued."""

    job_id: str
    kind: JobKind
    total: int
    state: JobState


class JobItem(Message, tag="job.item"):
    """One prompt of a job (a durable JetStream message)."""

    job_id: str
    item: int
    kind: JobKind
    prompt: str
    options: JobOptions = JobOptions()


class JobProgress(Message, tag="job.progress"):
    """An event: an item finished or the job changed state."""

    job_id: str
    state: JobState
    done: int
    failed: int
    total: int
    item: int = -1  # the item that just finished, -1 for a job-level event
    item_error: str = ""  # why that item failed, empty when it succeeded


class JobItemDead(Message, tag="job.item.dead"):
    """An item that failed `max_deliver` times (or could not be read): the dead letter."""

    job_id: str
    item: int
    reason: str
    attempts: int
    payload: str = ""  # the original message, when it could not be decoded


def item_msg_id(job_id: str, item: int) -> str:
    """The `Nats-Msg-Id` of an item: the stream drops a second copy within its window."""
    return f"{job_id}.{item}"


def result_object_name(job_id: str, item: int) -> str:
    """The object-store name of an item's result."""
    return f"{job_id}/{item}"
