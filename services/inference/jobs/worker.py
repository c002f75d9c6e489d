"""The batch-job worker of one inference replica.

Every replica pulls from one durable consumer of the `JOBS` work-queue
stream (`runtime.workqueue.WorkQueue`), at most `max_in_flight` items at a
time (a budget of its own, well below the interactive one, so batch work
never crowds out chat). For each item: skip it if its job is finished or
cancelled; generate it unless its result is already stored (a redelivery
after a crash); store the result; record it in the job state by
compare-and-set; then, only then, ack it.
A running item sends in-progress acks; a failed attempt is redelivered
with a growing delay; after `max_deliver` attempts the item is failed with
its reason and dead-lettered.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import TYPE_CHECKING

from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from proto.common import MessageDecodeError, decode, encode
from proto.jobs import TERMINAL_STATES, JobItem, JobItemDead, JobProgress, JobState, JobStatus, item_msg_id
from proto.subjects import JOB_DEAD_LETTER, JOB_ITEMS_ALL, JOBS_CONSUMER, JOBS_STREAM, job_events_subject
from runtime.logging import bind_request, get_logger
from runtime.workqueue import WorkQueue
from services.inference.errors import InferenceError, InvalidInferenceRequest
from services.inference.jobs.items import generate_item
from services.inference.jobs.reconcile import ReconcileLease, reconcile_jobs
from services.inference.jobs.settings import JobWorkerSettings
from services.inference.jobs.store import JobStore, StateConflict
from services.inference.jobs.transitions import mark_running, record_done, record_failed
from services.inference.triton_client import TritonModels

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

__all__ = ["JobWorker"]

_log = get_logger(__name__)


class JobWorker:
    """Works job items from JetStream with a concurrency budget of its own."""

    def __init__(self, models: TritonModels, settings: JobWorkerSettings) -> None:
        self._models = models
        self._settings = settings
        self._queue = WorkQueue(
            self._work,
            name="jobs",
            max_in_flight=settings.max_in_flight,
            fetch_wait_s=settings.fetch_wait_s,
            retry_delay_s=settings.retry_delay_s,  # back off while NATS is away
        )
        self._reconciling: asyncio.Task[None] | None = None
        self._client: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._store: JobStore | None = None
        self._lease: ReconcileLease | None = None

    @property
    def running(self) -> bool:
        """Whether the worker pulls items (and reconciles, when it does so periodically)."""
        reconciling = self._reconciling is None or not self._reconciling.done()
        return self._queue.running and reconciling

    @property
    def in_flight(self) -> int:
        """Items being worked now."""
        return self._queue.in_flight

    async def start(self, client: NatsClient) -> None:
        """Declare the streams and buckets, reconcile, then declare the consumer and pull items."""
        s = self._settings
        self._client = client
        self._js = client.jetstream(timeout=s.nats_timeout_s)
        self._store = await JobStore.open(self._js, cas_attempts=s.cas_attempts)
        changed = await self.reconcile()
        # JetStream redelivers without limit; the worker bounds the attempts itself (see
        # _work_item), so an item whose worker died on its last attempt is never stuck unacked.
        config = ConsumerConfig(
            durable_name=JOBS_CONSUMER,
            filter_subject=JOB_ITEMS_ALL,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=s.ack_wait_s,
            max_deliver=-1,
            max_ack_pending=-1,
        )
        await self._queue.start(self._js, JOBS_STREAM, config)
        _log.info("job worker started", max_in_flight=s.max_in_flight, reconciled=changed)
        if s.reconcile_every_s > 0:
            holder = f"{socket.gethostname()}:{os.getpid()}"
            self._lease = await ReconcileLease.open(self._js, period_s=s.reconcile_every_s, holder=holder)
            self._reconciling = asyncio.create_task(self._reconcile_periodically(), name="jobs-reconcile")

    async def stop(self) -> None:
        """Stop pulling; hand the items being worked back to the stream at once."""
        reconciling = [self._reconciling] if self._reconciling is not None else []
        for task in reconciling:
            task.cancel()
        await self._queue.stop(grace_s=0)  # each item's task naks its item when cancelled
        for outcome in await asyncio.gather(*reconciling, return_exceptions=True):
            if isinstance(outcome, Exception):  # not the cancellation: the loop had died of it
                _log.error("job reconciliation had stopped", exc_info=outcome)
        self._reconciling = None

    async def reconcile(self) -> int:
        """Settle jobs that no worker can finish (see `reconcile_jobs`)."""
        return await reconcile_jobs(
            self._ready_store(), queue_grace_s=self._settings.queue_grace_s, on_change=self._progress
        )

    async def _reconcile_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._settings.reconcile_every_s)  # the reconciliation period
            try:
                if self._lease is None or await self._lease.acquire():
                    await self.reconcile()
            except (NatsError, StateConflict) as exc:
                _log.warning("job reconciliation failed", error=repr(exc))

    # -- one item -----------------------------------------------------------------

    async def _work(self, msg: Msg) -> None:
        attempts = msg.metadata.num_delivered or 1
        try:
            item: JobItem = decode(msg.data, JobItem)
        except MessageDecodeError as exc:
            _log.error("unreadable job item", detail=exc.detail)
            payload = msg.data.decode("utf-8", errors="replace")[:2000]
            dead = JobItemDead(job_id="", item=-1, reason=exc.detail, attempts=attempts, payload=payload)
            await self._dead_letter(dead)
            await msg.term()
            return
        with bind_request(item_msg_id(item.job_id, item.item), job_id=item.job_id, item=item.item):
            try:
                await self._work_item(msg, item, attempts)
            except asyncio.CancelledError:
                await asyncio.shield(self._hand_back(msg))
                raise
            except (NatsError, StateConflict) as exc:
                _log.warning("job item could not be recorded", error=repr(exc), attempts=attempts)
                await self._attempt_failed(msg, item, attempts, f"the bus failed: {exc!r}")
            except Exception as exc:
                _log.error("job item crashed", exc_info=exc, attempts=attempts)
                await self._attempt_failed(msg, item, attempts, f"internal error: {type(exc).__name__}")

    async def _work_item(self, msg: Msg, item: JobItem, attempts: int) -> None:
        store = self._ready_store()
        status = await store.status(item.job_id)
        if status is None or status.state in TERMINAL_STATES:
            _log.info("job item skipped", state=status.state if status else "unknown job")
            await msg.ack_sync(timeout=self._settings.nats_timeout_s)
            return
        if attempts > self._settings.max_deliver:
            # Every attempt was used and the worker stopped during them (a crash, an item
            # that kills the process): fail the item rather than try forever.
            reason = f"gave up after {attempts - 1} attempts: the worker stopped while running it"
            await self._give_up(msg, item, attempts - 1, reason)
            return
        if status.state == JobState.QUEUED:
            await store.update(item.job_id, mark_running)
        if await store.has_result(item.job_id, item.item):
            _log.info("job item result already stored", attempts=attempts)
        else:
            try:
                data, content_type = await self._generate(msg, item)
            except InvalidInferenceRequest as exc:
                await self._give_up(msg, item, attempts, exc.detail)
                return
            except InferenceError as exc:
                await self._attempt_failed(msg, item, attempts, exc.detail)
                return
            await store.put_result(item.job_id, item.item, data, content_type)
        outcome = await store.update(item.job_id, lambda s, now: record_done(s, item.item, now))
        if outcome is not None and outcome[1]:
            await self._progress(outcome[0], item.item)
        await msg.ack_sync(timeout=self._settings.nats_timeout_s)

    async def _generate(self, msg: Msg, item: JobItem) -> tuple[bytes, str]:
        """Generate while telling JetStream, every heartbeat, that the item is in progress."""

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(self._settings.heartbeat_s)  # the in-progress period
                await msg.in_progress()

        beating = asyncio.create_task(heartbeat())
        try:
            return await generate_item(self._models, item, timeout_s=self._settings.item_timeout_s)
        finally:
            beating.cancel()

    async def _attempt_failed(self, msg: Msg, item: JobItem, attempts: int, reason: str) -> None:
        s = self._settings
        if attempts >= s.max_deliver:
            await self._give_up(msg, item, attempts, reason)
            return
        delay = min(s.retry_delay_s * 2 ** (attempts - 1), s.retry_delay_max_s)
        _log.warning("job item attempt failed", reason=reason, attempts=attempts, retry_in_s=delay)
        await msg.nak(delay=delay)

    async def _give_up(self, msg: Msg, item: JobItem, attempts: int, reason: str) -> None:
        """Fail the item for good: record why, dead-letter it, remove it from the queue."""
        _log.warning("job item failed", reason=reason, attempts=attempts)
        outcome = await self._ready_store().update(
            item.job_id, lambda s, now: record_failed(s, item.item, reason, attempts, now)
        )
        await self._dead_letter(
            JobItemDead(job_id=item.job_id, item=item.item, reason=reason, attempts=attempts)
        )
        if outcome is not None and outcome[1]:
            await self._progress(outcome[0], item.item, reason)
        await msg.ack_sync(timeout=self._settings.nats_timeout_s)

    async def _hand_back(self, msg: Msg) -> None:
        try:
            await msg.nak()
        except NatsError as exc:
            _log.warning("could not hand a job item back", error=repr(exc))

    async def _dead_letter(self, dead: JobItemDead) -> None:
        assert self._js is not None
        headers = {"Nats-Msg-Id": f"dead.{item_msg_id(dead.job_id, dead.item)}"} if dead.job_id else None
        await self._js.publish(JOB_DEAD_LETTER, encode(dead), headers=headers)

    async def _progress(self, status: JobStatus, item: int = -1, error: str = "") -> None:
        assert self._client is not None
        event = JobProgress(
            job_id=status.job_id,
            state=status.state,
            done=len(status.done),
            failed=len(status.failures),
            total=status.total,
            item=item,
            item_error=error,
        )
        await self._client.publish(job_events_subject(status.job_id), encode(event))

    def _ready_store(self) -> JobStore:
        assert self._store is not None, "JobWorker.start() runs first"
        return self._store
