"""Job state and results on a real nats-server: compare-and-set under contention, write-once results,
and the gateway's submission and cancellation (no worker runs here)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from faststream.nats import NatsBroker
from nats.aio.client import Client

from deploy.cluster import NatsServer
from proto.documents import OPEN_SCOPE
from proto.jobs import JobKind, JobOptions, JobState, JobStatus
from proto.subjects import JOB_RESULTS_OBJECTS, JOBS_STREAM, job_items_subject
from runtime.bus import make_broker
from runtime.errors import BadRequest, NotFound, TooLarge
from services.gateway.jobs import JobApiSettings, JobDoor
from services.inference.jobs.store import JobStore
from services.inference.jobs.transitions import record_done


@pytest.fixture(scope="module")
def own_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(Path(tmp_path_factory.mktemp("jobs-nats")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def broker(own_nats: NatsServer) -> AsyncIterator[NatsBroker]:
    bus = make_broker(own_nats.url, "jobs-test")
    await bus.connect()
    yield bus
    await bus.stop()


@pytest.fixture
async def clients(own_nats: NatsServer) -> AsyncIterator[list[Client]]:
    connections = [await nats.connect(own_nats.url) for _ in range(2)]
    yield connections
    for connection in connections:
        await connection.close()


async def _submitted(door: JobDoor, items: int) -> JobStatus:
    submitted = await door.submit(
        JobKind.TEXT, [f"question {n}?" for n in range(items)], JobOptions(), owner=OPEN_SCOPE
    )
    return await door.status(submitted.job_id, OPEN_SCOPE)


async def test_two_replicas_recording_at_once_lose_no_item(broker: NatsBroker, clients: list[Client]) -> None:
    door = JobDoor(broker, JobApiSettings())
    status = await _submitted(door, 40)
    stores = [await JobStore.open(c.jetstream(), cas_attempts=200) for c in clients]

    async def record(n: int) -> None:
        await stores[n % 2].update(status.job_id, lambda s, now: record_done(s, n, now))

    await asyncio.gather(*(record(n) for n in range(40)), *(record(n) for n in range(0, 40, 3)))
    final = await door.status(status.job_id, OPEN_SCOPE)
    assert final.done == tuple(range(40))
    assert final.state == JobState.COMPLETED


async def test_a_result_is_written_once(clients: list[Client]) -> None:
    js = clients[0].jetstream()
    store = await JobStore.open(js, cas_attempts=10)
    job_id = uuid.uuid4().hex
    before = (await js.stream_info(f"OBJ_{JOB_RESULTS_OBJECTS}")).state.last_seq
    assert await store.put_result(job_id, 0, b"first", "text/plain") is True
    assert await store.put_result(job_id, 0, b"second", "text/plain") is False
    after = (await js.stream_info(f"OBJ_{JOB_RESULTS_OBJECTS}")).state.last_seq
    assert after - before == 2  # one chunk and one meta message: one write
    assert await store.has_result(job_id, 0)


async def test_submission_queues_one_deduplicated_message_per_item(broker: NatsBroker) -> None:
    door = JobDoor(broker, JobApiSettings())
    status = await _submitted(door, 5)
    assert status.state == JobState.QUEUED and status.queued_all and status.total == 5
    js = broker.connection.jetstream()
    subject = job_items_subject(status.job_id)
    # A re-submitted item (same Nats-Msg-Id) is dropped by the stream.
    ack = await js.publish(subject, b"{}", headers={"Nats-Msg-Id": f"{status.job_id}.3"})
    assert ack.duplicate
    info = await js.stream_info(JOBS_STREAM, subjects_filter=subject)
    assert (info.state.subjects or {}).get(subject) == 5


async def test_cancel_drops_the_queued_items_and_is_idempotent(broker: NatsBroker) -> None:
    door = JobDoor(broker, JobApiSettings())
    status = await _submitted(door, 6)
    cancelled = await door.cancel(status.job_id, OPEN_SCOPE)
    assert cancelled.state == JobState.CANCELLED
    js = broker.connection.jetstream()
    info = await js.stream_info(JOBS_STREAM, subjects_filter=job_items_subject(status.job_id))
    assert not info.state.subjects
    assert (await door.cancel(status.job_id, OPEN_SCOPE)).state == JobState.CANCELLED


async def test_bad_submissions_are_refused_with_a_reason(broker: NatsBroker) -> None:
    door = JobDoor(broker, JobApiSettings(max_items=3, max_image_prompt_chars=10))
    with pytest.raises(TooLarge, match="at most 3 items"):
        await door.submit(JobKind.TEXT, ["a?"] * 4, JobOptions(), owner=OPEN_SCOPE)
    with pytest.raises(BadRequest, match="item 1 is empty"):
        await door.submit(JobKind.TEXT, ["a?", "  "], JobOptions(), owner=OPEN_SCOPE)
    with pytest.raises(TooLarge, match="limit is 10"):
        await door.submit(JobKind.IMAGE, ["a very long picture prompt"], JobOptions(), owner=OPEN_SCOPE)
    with pytest.raises(NotFound):
        await door.status("not-a-job-id", OPEN_SCOPE)
    with pytest.raises(NotFound):
        await door.status(uuid.uuid4().hex, OPEN_SCOPE)


async def test_a_job_is_found_by_its_owner_only(broker: NatsBroker) -> None:
    door = JobDoor(broker, JobApiSettings())
    mine = await door.submit(JobKind.TEXT, ["a?"], JobOptions(), owner="k0123456789ab")
    assert (await door.status(mine.job_id, "k0123456789ab")).owner == "k0123456789ab"
    for wrong in (OPEN_SCOPE, "kba9876543210"):
        with pytest.raises(NotFound):
            await door.status(mine.job_id, wrong)
        with pytest.raises(NotFound):
            await door.cancel(mine.job_id, wrong)
        with pytest.raises(NotFound):
            await door.item(mine.job_id, 0, wrong)
    assert (await door.status(mine.job_id, "k0123456789ab")).state != JobState.CANCELLED
