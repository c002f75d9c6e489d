"""Where the worker keeps jobs: state in a key-value bucket, results in an object store.

Every state write is a compare-and-set on the key's revision, retried on
conflict (`runtime.kv.change_value`, as the gateway's), so replicas finishing
items of one job at once never lose an update. A result is written once: a
second write of the same item is a no-op (a redelivered item after a crash
finds its result and only records it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from nats.js import JetStreamContext
from nats.js.api import ObjectMeta
from nats.js.errors import ObjectNotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from proto.jobs import JobStatus, result_object_name
from proto.streams import (
    JOB_RESULTS_CONFIG,
    JOB_STATE_CONFIG,
    JOBS_DEAD_STREAM_CONFIG,
    JOBS_STREAM_CONFIG,
)
from proto.subjects import JOB_RESULTS_OBJECTS, JOB_STATE_BUCKET, JOBS_STREAM, job_items_subject
from runtime.jetstream import current_values, ensure_stream, open_key_value, open_object_store
from runtime.kv import TooManyConflicts, UnreadableValue, change_value, read_value

__all__ = ["JobStore", "StateConflict", "StatusChange"]

# Given the current status and the time, the new status (None: leave it as it is).
StatusChange = Callable[[JobStatus, float], JobStatus | None]


class StateConflict(RuntimeError):
    """A job-state write lost the compare-and-set race too many times in a row."""


class JobStore:
    """A job's state and its items' results, shared by every replica."""

    def __init__(
        self, js: JetStreamContext, state: KeyValue, results: ObjectStore, *, cas_attempts: int
    ) -> None:
        self._js = js
        self._state = state
        self._results = results
        self._cas_attempts = cas_attempts

    @classmethod
    async def open(cls, js: JetStreamContext, *, cas_attempts: int) -> JobStore:
        """Declare the job streams and buckets (idempotent) and open them."""
        await ensure_stream(js, JOBS_STREAM_CONFIG)
        await ensure_stream(js, JOBS_DEAD_STREAM_CONFIG)
        state = await open_key_value(js, JOB_STATE_CONFIG)
        results = await open_object_store(js, JOB_RESULTS_OBJECTS, JOB_RESULTS_CONFIG)
        return cls(js, state, results, cas_attempts=cas_attempts)

    async def status(self, job_id: str) -> JobStatus | None:
        """The job's status, or None when there is no such job (or its record is unreadable)."""
        try:
            found = await read_value(self._state, job_id, JobStatus)
        except UnreadableValue:  # logged by runtime.kv; no worker can use the record
            return None
        return found.value if found else None

    async def update(self, job_id: str, change: StatusChange) -> tuple[JobStatus, bool] | None:
        """Apply `change` by compare-and-set; (status now, whether it changed), None if no job."""
        try:
            return await change_value(
                self._state,
                job_id,
                JobStatus,
                lambda current: change(current, time.time()),
                attempts=self._cas_attempts,
            )
        except UnreadableValue:  # logged by runtime.kv; no worker can use the record
            return None
        except TooManyConflicts as exc:
            raise StateConflict(
                f"job {job_id}: {self._cas_attempts} state writes in a row lost the race"
            ) from exc

    async def job_ids(self) -> list[str]:
        """Every job in the state bucket (one pass: `keys()` can miss some, see `current_values`)."""
        return [key for key, _ in await current_values(self._js, JOB_STATE_BUCKET)]

    async def items_in_stream(self, job_id: str) -> int:
        """How many of the job's items the stream still holds (unacked ones included)."""
        subject = job_items_subject(job_id)
        info = await self._js.stream_info(JOBS_STREAM, subjects_filter=subject)
        return int((info.state.subjects or {}).get(subject, 0))

    async def has_result(self, job_id: str, item: int) -> bool:
        """Whether the item's result is stored."""
        try:
            await self._results.get_info(result_object_name(job_id, item))
        except ObjectNotFoundError:
            return False
        return True

    async def put_result(self, job_id: str, item: int, data: bytes, content_type: str) -> bool:
        """Store the item's result; False (and nothing written) when it is already stored."""
        if await self.has_result(job_id, item):
            return False
        name = result_object_name(job_id, item)
        meta = ObjectMeta(name=name, headers={"Content-Type": [content_type]})
        await self._results.put(name, data, meta=meta)
        return True
