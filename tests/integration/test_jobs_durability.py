"""Batch jobs survive a crash: SIGKILL mid-job, reconciliation at start, retries and the dead letter.

Each test runs its own nats-server and its own inference process (the shared
system's inference is never killed); Triton is the shared session server.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
from faststream.nats import NatsBroker

from deploy.cluster import NatsServer, ServiceProcess, free_port
from deploy.triton.local import LocalTriton
from proto.common import decode, encode
from proto.documents import OPEN_SCOPE
from proto.jobs import ItemFailure, JobItemDead, JobKind, JobOptions, JobProgress, JobState, JobStatus
from proto.prompt import PromptSource, build_prompt
from proto.subjects import (
    JOB_DEAD_LETTER,
    JOB_RESULTS_OBJECTS,
    JOB_STATE_BUCKET,
    JOBS_CONSUMER,
    JOBS_DEAD_STREAM,
    JOBS_STREAM,
)
from runtime.bus import make_broker
from services.gateway.jobs import JobApiSettings, JobDoor

pytestmark = pytest.mark.integration

JOB_WAIT_S = 90.0
FAST_RECOVERY = {
    "INFERENCE_JOBS_ACK_WAIT_S": "2",  # a killed worker's items come back after 2 s
    "INFERENCE_JOBS_MAX_IN_FLIGHT": "4",
    "INFERENCE_JOBS_RETRY_DELAY_S": "0.1",
}


def text_prompt(n: int) -> str:
    source = PromptSource(1, f"registry {n}", f"The capital of Freedonia district {n} is Town{n}.")
    return build_prompt(f"What is the capital of Freedonia district {n}?", [source])


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def broker(own_nats: NatsServer) -> AsyncIterator[NatsBroker]:
    bus: NatsBroker = make_broker(own_nats.url, "jobs-test")
    await bus.connect()
    yield bus
    await bus.stop()


@pytest.fixture
def door(broker: NatsBroker) -> JobDoor:
    """The gateway's job door on the test's own NATS (no HTTP needed here)."""
    return JobDoor(broker, JobApiSettings())


def inference(own_nats: NatsServer, triton_grpc: str, log_dir: Path, **env: str) -> ServiceProcess:
    service_env = {
        "INFERENCE_NATS_URL": own_nats.url,
        "INFERENCE_TRITON_GRPC_URL": triton_grpc,
        **FAST_RECOVERY,
        **env,
    }
    return ServiceProcess("inference", service_env, log_dir)


async def until_finished(door: JobDoor, job_id: str, *, stop_at_done: int | None = None) -> JobProgress:
    """Follow the job's events until it ends (or until `stop_at_done` items are done)."""
    async with asyncio.timeout(JOB_WAIT_S):
        async for event in door.events(job_id, OPEN_SCOPE):
            if stop_at_done is not None and event.done >= stop_at_done:
                return event
            last = event
    return last


async def test_sigkill_mid_job_then_restart_gives_every_item_exactly_once(
    own_nats: NatsServer, door: JobDoor, broker: NatsBroker, triton: LocalTriton, tmp_path: Path
) -> None:
    worker = inference(own_nats, triton.grpc_url, tmp_path)
    worker.start()
    try:
        await worker.wait_healthy(own_nats.url)
        submitted = await door.submit(
            JobKind.TEXT, [text_prompt(n) for n in range(60)], JobOptions(), owner=OPEN_SCOPE
        )
        halfway = await until_finished(door, submitted.job_id, stop_at_done=20)
        assert halfway.state == JobState.RUNNING
        worker.stop(signal.SIGKILL)
        killed_at = await door.status(submitted.job_id, OPEN_SCOPE)
        assert len(killed_at.done) < 60
        worker.start()
        await worker.wait_healthy(own_nats.url)
        final = await until_finished(door, submitted.job_id)
    finally:
        worker.stop()
    assert final.state == JobState.COMPLETED, worker.log()[-3000:]
    status = await door.status(submitted.job_id, OPEN_SCOPE)
    assert status.done == tuple(range(60)) and status.failures == ()
    js = broker.connection.jetstream()
    results = await js.object_store(JOB_RESULTS_OBJECTS)
    names = [info.name for info in await results.list()]
    assert sorted(names) == sorted(f"{submitted.job_id}/{n}" for n in range(60))
    stream = (await js.stream_info(f"OBJ_{JOB_RESULTS_OBJECTS}")).state
    assert not stream.num_deleted  # no result was written a second time (a rewrite replaces one)
    assert (await js.stream_info(JOBS_STREAM)).state.messages == 0
    texts = [(await results.get(f"{submitted.job_id}/{n}")).data for n in (0, 59)]
    assert b"Town0" in texts[0] and b"Town59" in texts[1]


async def test_a_worker_reconciles_jobs_left_running_at_start(
    own_nats: NatsServer, door: JobDoor, broker: NatsBroker, triton: LocalTriton, tmp_path: Path
) -> None:
    js = broker.connection.jetstream()
    await door.submit(
        JobKind.TEXT, ["declare the buckets?"], JobOptions(), owner=OPEN_SCOPE
    )  # streams and buckets exist
    state = await js.key_value(JOB_STATE_BUCKET)
    now = time.time()
    finished_but_running = _record(total=2, done=(0, 1), queued_all=True, now=now)
    lost_items = _record(total=3, done=(0,), queued_all=True, now=now)
    never_queued = _record(total=3, done=(), queued_all=False, now=now - 3600)
    for record in (finished_but_running, lost_items, never_queued):
        await state.create(record.job_id, encode(record))
    worker = inference(own_nats, triton.grpc_url, tmp_path, INFERENCE_JOBS_QUEUE_GRACE_S="60")
    worker.start()
    try:
        await worker.wait_healthy(own_nats.url)  # reconciliation runs before the worker says ready
    finally:
        worker.stop()
    settled = [
        await door.status(r.job_id, OPEN_SCOPE) for r in (finished_but_running, lost_items, never_queued)
    ]
    assert settled[0].state == JobState.COMPLETED and settled[0].failures == ()
    assert settled[1].state == JobState.COMPLETED
    assert [f.item for f in settled[1].failures] == [1, 2]
    assert settled[2].state == JobState.FAILED and "queuing" in settled[2].reason


async def test_an_item_that_keeps_failing_is_failed_and_dead_lettered_after_max_deliver(
    own_nats: NatsServer, door: JobDoor, broker: NatsBroker, tmp_path: Path
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"  # no Triton listens here: every attempt fails
    worker = inference(
        own_nats, nowhere, tmp_path, INFERENCE_JOBS_MAX_DELIVER="2", INFERENCE_JOBS_ITEM_TIMEOUT_S="0.5"
    )
    worker.start()
    try:
        await worker.wait_healthy(own_nats.url, ready=False)
        submitted = await door.submit(JobKind.IMAGE, ["a cat"], JobOptions(), owner=OPEN_SCOPE)
        final = await until_finished(door, submitted.job_id)
    finally:
        worker.stop()
    assert final.state == JobState.FAILED
    status = await door.status(submitted.job_id, OPEN_SCOPE)
    assert len(status.failures) == 1
    failure: ItemFailure = status.failures[0]
    assert failure.attempts == 2 and failure.reason
    # The dead letter is kept in a stream of its own.
    kept = await broker.connection.jetstream().get_last_msg(JOBS_DEAD_STREAM, JOB_DEAD_LETTER)
    dead = decode(kept.data or b"", JobItemDead)
    assert (dead.job_id, dead.item, dead.attempts) == (submitted.job_id, 0, 2)
    assert dead.reason == failure.reason


def _record(*, total: int, done: tuple[int, ...], queued_all: bool, now: float) -> JobStatus:
    status = JobStatus(
        job_id=uuid.uuid4().hex, kind=JobKind.TEXT, total=total, state=JobState.RUNNING, created_at=now
    )
    return msgspec.structs.replace(status, done=done, queued_all=queued_all, updated_at=now)


async def test_an_item_whose_worker_dies_on_its_last_attempt_is_failed_not_retried_forever(
    own_nats: NatsServer, door: JobDoor, broker: NatsBroker, tmp_path: Path
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"  # the attempt hangs, retrying an absent Triton, until killed
    worker = inference(
        own_nats, nowhere, tmp_path, INFERENCE_JOBS_MAX_DELIVER="1", INFERENCE_JOBS_ITEM_TIMEOUT_S="60"
    )
    worker.start()
    try:
        await worker.wait_healthy(own_nats.url, ready=False)
        submitted = await door.submit(JobKind.IMAGE, ["a cat"], JobOptions(), owner=OPEN_SCOPE)
        js = broker.connection.jetstream()
        async with asyncio.timeout(JOB_WAIT_S):
            while True:  # until the worker holds the item (readiness probe of the consumer)
                if (await js.consumer_info(JOBS_STREAM, JOBS_CONSUMER)).num_ack_pending:
                    break
                await asyncio.sleep(0.05)
        worker.stop(signal.SIGKILL)
        worker.start()
        final = await until_finished(door, submitted.job_id)
    finally:
        worker.stop()
    assert final.state == JobState.FAILED
    failure = (await door.status(submitted.job_id, OPEN_SCOPE)).failures[0]
    assert failure.reason.startswith("gave up after 1 attempts") and failure.attempts == 1
    assert (await js.stream_info(JOBS_STREAM)).state.messages == 0
