"""The gateway's door to batch jobs: submit, look, read results, cancel, watch.

A submission writes the job's `JobStatus` to the key-value bucket first, then
publishes one durable `JobItem` per prompt (with `Nats-Msg-Id`, so a retried
publish is dropped by the stream), then marks the job `queued_all`. Every
status write is a compare-and-set, like the workers' (see `proto/jobs.py`):
`job_state.py` reads and changes a job's status, `job_results.py` reads its
results; this door checks submissions and puts the steps in order.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING

import msgspec
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError

from proto.common import MessageDecodeError, decode, encode
from proto.documents import OPEN_SCOPE
from proto.jobs import (
    TERMINAL_STATES,
    JobItem,
    JobKind,
    JobOptions,
    JobProgress,
    JobState,
    JobStatus,
    JobSubmitted,
    item_msg_id,
)
from proto.streams import JOB_RESULTS_CONFIG, JOB_STATE_CONFIG, JOBS_DEAD_STREAM_CONFIG, JOBS_STREAM_CONFIG
from proto.subjects import (
    JOB_RESULTS_OBJECTS,
    JOBS_STREAM,
    job_events_subject,
    job_items_subject,
)
from runtime.errors import BadRequest, NotFound, TooLarge, Unavailable
from runtime.jetstream import ensure_stream, open_key_value, open_object_store
from runtime.logging import get_logger
from runtime.settings import load_settings
from services.gateway.errors import ItemNotReady
from services.gateway.job_results import finished_results, read_result
from services.gateway.job_state import (
    change_status,
    is_job_id,
    mark_cancelled,
    mark_failed,
    mark_queued_all,
    progress,
    read_status,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue
    from nats.js.object_store import ObjectStore

    from services.gateway.job_results import ItemResult

__all__ = [
    "JobApiSettings",
    "JobDoor",
]

_log = get_logger(__name__)


class JobApiSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Limits of the job API, read from `GATEWAY_JOBS_*` variables."""

    max_items: int = 1000  # prompts in one job
    max_body_bytes: int = 4_000_000  # a job submission's JSON body
    max_prompt_chars: int = 8_000  # one text item's prompt (its own Sources: block included)
    max_image_prompt_chars: int = 2_000  # one image item's prompt
    publish_concurrency: int = 64  # item publications awaiting JetStream's ack at once
    read_concurrency: int = 16  # results read at once when listing a job's results
    nats_timeout_s: float = 5.0  # deadline of one JetStream call
    cas_attempts: int = 100  # compare-and-set retries of one job-state write
    events_poll_s: float = 10.0  # WebSocket: the status is re-read when no event came for this long


class _Buckets(msgspec.Struct, frozen=True):
    js: JetStreamContext
    state: KeyValue
    results: ObjectStore


class JobDoor:
    """Jobs as the gateway's routes see them; one per gateway process."""

    def __init__(self, broker: NatsBroker, settings: JobApiSettings) -> None:
        self._broker = broker
        self._settings = settings
        self._buckets: _Buckets | None = None
        self._opening = asyncio.Lock()

    @property
    def settings(self) -> JobApiSettings:
        """The limits this door enforces."""
        return self._settings

    @classmethod
    def from_env(cls, broker: NatsBroker) -> JobDoor:
        """A door with settings from `GATEWAY_JOBS_*`."""
        return cls(broker, load_settings(JobApiSettings, "GATEWAY_JOBS"))

    async def submit(
        self, kind: JobKind, prompts: list[str], options: JobOptions, *, owner: str
    ) -> JobSubmitted:
        """Accept a job of `owner` (a tenant's scope): record it, queue its items, return its id."""
        self._check(kind, prompts)
        b = await self._ready()
        job_id = uuid.uuid4().hex
        now = time.time()
        status = JobStatus(
            job_id=job_id,
            kind=kind,
            total=len(prompts),
            state=JobState.QUEUED,
            options=options,
            created_at=now,
            updated_at=now,
            owner=owner,
        )
        await b.state.create(job_id, encode(status))
        try:
            await self._publish_items(b.js, job_id, kind, prompts, options)
        except (NatsError, TimeoutError) as exc:
            _log.error("job items could not be queued", job_id=job_id, error=repr(exc))
            reason = f"could not queue the items: {type(exc).__name__}"
            await self._change(job_id, lambda s: mark_failed(s, reason))
            await b.js.purge_stream(JOBS_STREAM, subject=job_items_subject(job_id))
            raise Unavailable("the job queue is unavailable; try again later") from exc
        now_status = await self._change(job_id, mark_queued_all)
        _log.info("job submitted", job_id=job_id, kind=kind, items=len(prompts))
        return JobSubmitted(job_id=job_id, kind=kind, total=len(prompts), state=now_status.state)

    async def status(self, job_id: str, owner: str) -> JobStatus:
        """The job's status; NotFound when there is none, or it is another tenant's."""
        found = await self._entry(job_id)
        if found is None or (found[0].owner or OPEN_SCOPE) != owner:
            raise NotFound(f"no job {job_id!r}")
        return found[0]

    async def cancel(self, job_id: str, owner: str) -> JobStatus:
        """Cancel the job: its queued items are dropped; a finished job stays as it is."""
        await self.status(job_id, owner)  # NotFound for another tenant's job
        status = await self._change(job_id, mark_cancelled)
        if status.state == JobState.CANCELLED:
            b = await self._ready()
            await b.js.purge_stream(JOBS_STREAM, subject=job_items_subject(job_id))
            await self._broker.connection.publish(job_events_subject(job_id), encode(progress(status)))
            _log.info("job cancelled", job_id=job_id, done=len(status.done))
        return status

    async def item(self, job_id: str, item: int, owner: str) -> tuple[bytes, str]:
        """One item's result and its content type."""
        status = await self.status(job_id, owner)
        if not 0 <= item < status.total:
            raise NotFound(f"job {job_id} has items 0 to {status.total - 1}")
        for failure in status.failures:
            if failure.item == item:
                raise ItemNotReady(f"item {item} failed: {failure.reason}")
        result = await self._read(job_id, item)
        if result is None:
            raise ItemNotReady(f"item {item} is not done yet (job {status.state})")
        return result

    def results(self, status: JobStatus) -> AsyncIterator[ItemResult]:
        """Every finished item of the job in item order: its result or its failure."""
        return finished_results(
            status, lambda n: self._read(status.job_id, n), window=self._settings.read_concurrency
        )

    async def events(self, job_id: str, owner: str) -> AsyncIterator[JobProgress]:
        """The job's progress: its state now, then each event, until it is finished."""
        subscription = await self._broker.connection.subscribe(job_events_subject(job_id))
        try:
            status = await self.status(job_id, owner)
            yield progress(status)
            while status.state not in TERMINAL_STATES:
                try:
                    message = await subscription.next_msg(timeout=self._settings.events_poll_s)
                except NatsTimeoutError:
                    status = await self.status(job_id, owner)  # events are at most once: look again
                    yield progress(status)
                    continue
                try:
                    event: JobProgress = decode(message.data, JobProgress)
                except MessageDecodeError as exc:  # not a progress event: skip it, keep watching
                    _log.warning("unreadable job event", job_id=job_id, detail=exc.detail)
                    continue
                yield event
                if event.state in TERMINAL_STATES:
                    return
        finally:
            await subscription.unsubscribe()

    # -- internals ----------------------------------------------------------------

    def _check(self, kind: JobKind, prompts: list[str]) -> None:
        s = self._settings
        if not prompts:
            raise BadRequest("a job needs at least one item")
        if len(prompts) > s.max_items:
            raise TooLarge(f"a job holds at most {s.max_items} items, this one has {len(prompts)}")
        limit = s.max_image_prompt_chars if kind == JobKind.IMAGE else s.max_prompt_chars
        for n, prompt in enumerate(prompts):
            if not prompt.strip():
                raise BadRequest(f"item {n} is empty")
            if len(prompt) > limit:
                raise TooLarge(f"item {n} has {len(prompt)} characters, the limit is {limit}")

    async def _publish_items(
        self, js: JetStreamContext, job_id: str, kind: JobKind, prompts: list[str], options: JobOptions
    ) -> None:
        subject = job_items_subject(job_id)
        gate = asyncio.Semaphore(self._settings.publish_concurrency)

        async def publish(n: int, prompt: str) -> None:
            item = JobItem(job_id=job_id, item=n, kind=kind, prompt=prompt, options=options)
            async with gate:
                await js.publish(subject, encode(item), headers={"Nats-Msg-Id": item_msg_id(job_id, n)})

        await asyncio.gather(*(publish(n, prompt) for n, prompt in enumerate(prompts)))

    async def _read(self, job_id: str, item: int) -> tuple[bytes, str] | None:
        b = await self._ready()
        return await read_result(b.js, b.results, job_id, item)

    async def _change(self, job_id: str, change: Callable[[JobStatus], JobStatus | None]) -> JobStatus:
        b = await self._ready()
        return await change_status(b.state, job_id, change, attempts=self._settings.cas_attempts)

    async def _entry(self, job_id: str) -> tuple[JobStatus, int] | None:
        if not is_job_id(job_id):
            return None  # no such job, and no need to open the buckets
        b = await self._ready()
        return await read_status(b.state, job_id)

    async def _ready(self) -> _Buckets:
        async with self._opening:
            if self._buckets is None:
                js = self._broker.connection.jetstream(timeout=self._settings.nats_timeout_s)
                await ensure_stream(js, JOBS_STREAM_CONFIG)
                await ensure_stream(js, JOBS_DEAD_STREAM_CONFIG)
                state = await open_key_value(js, JOB_STATE_CONFIG)
                results = await open_object_store(js, JOB_RESULTS_OBJECTS, JOB_RESULTS_CONFIG)
                self._buckets = _Buckets(js, state, results)
            return self._buckets
