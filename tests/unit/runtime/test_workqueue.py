"""`WorkQueue` on a real nats-server: bounded in-flight work, stop with and without a grace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig
from structlog.testing import capture_logs

from deploy.cluster import NatsServer
from runtime.workqueue import WorkQueue

STREAM = "WORK"
DURABLE = "workers"
WAIT_S = 10.0  # the longest any condition below may take to hold


def consumer_config(*, ack_wait_s: float = 30.0) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=DURABLE,
        filter_subject="work.>",
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
        max_deliver=-1,
        max_ack_pending=-1,
    )


def queue(handle: Callable[[Msg], Awaitable[None]], *, max_in_flight: int) -> WorkQueue:
    return WorkQueue(handle, name="test", max_in_flight=max_in_flight, fetch_wait_s=0.2, retry_delay_s=0.1)


@dataclass
class Handler:
    """Works each message until `release` is set (or forever), then acks it; counts what it sees."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    active: int = 0
    peak: int = 0
    acked: list[bytes] = field(default_factory=list)
    cancelled: list[bytes] = field(default_factory=list)
    hand_back: bool = False  # nak when cancelled, as the job worker does

    async def __call__(self, msg: Msg) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await self.release.wait()
            await msg.ack_sync()
            self.acked.append(msg.data)
        except asyncio.CancelledError:
            self.cancelled.append(msg.data)
            if self.hand_back:
                await msg.nak()
            raise
        finally:
            self.active -= 1


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JetStreamContext]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    client = await nats.connect(server.url)
    try:
        js = client.jetstream()
        await js.add_stream(
            StreamConfig(name=STREAM, subjects=["work.>"], retention=RetentionPolicy.WORK_QUEUE)
        )
        yield js
    finally:
        await client.close()
        server.stop()


async def publish(js: JetStreamContext, count: int) -> None:
    for n in range(count):
        await js.publish(f"work.{n}", f"m{n}".encode(), headers={"Nats-Msg-Id": f"m{n}"})


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while True:  # polled: the conditions are counters the handlers keep
            if condition():
                return
            await asyncio.sleep(0.02)


async def test_at_most_max_in_flight_messages_are_held_and_all_get_worked(js: JetStreamContext) -> None:
    handler = Handler()
    work = queue(handler, max_in_flight=3)
    await publish(js, 10)
    await work.start(js, STREAM, consumer_config())
    try:
        assert work.running
        await until(lambda: handler.active == 3)
        await asyncio.sleep(0.5)  # several fetch waits: a loop that pulled ahead would have by now
        assert (await js.consumer_info(STREAM, DURABLE)).num_ack_pending == 3
        assert work.in_flight == 3
        handler.release.set()
        await until(lambda: len(handler.acked) == 10)
    finally:
        await work.stop()
    assert handler.peak == 3
    assert sorted(handler.acked) == sorted(f"m{n}".encode() for n in range(10))
    assert (await js.stream_info(STREAM)).state.messages == 0
    assert not work.running


async def test_stop_without_grace_cancels_at_once_and_a_hand_back_is_redelivered_at_once(
    js: JetStreamContext,
) -> None:
    first = Handler(hand_back=True)
    work = queue(first, max_in_flight=2)
    await publish(js, 2)
    await work.start(js, STREAM, consumer_config(ack_wait_s=30))
    await until(lambda: first.active == 2)
    started = time.monotonic()
    await work.stop()
    assert time.monotonic() - started < 1.0
    assert sorted(first.cancelled) == [b"m0", b"m1"] and first.acked == []

    second = Handler()
    second.release.set()
    again = queue(second, max_in_flight=2)
    await again.start(js, STREAM, consumer_config(ack_wait_s=30))
    try:
        await until(lambda: len(second.acked) == 2)  # long before the 30 s ack wait
    finally:
        await again.stop()


async def test_stop_with_a_grace_lets_quick_work_finish_and_cancels_the_rest(js: JetStreamContext) -> None:
    quick = asyncio.Event()
    finished: list[bytes] = []
    cancelled: list[bytes] = []

    async def handle(msg: Msg) -> None:
        try:
            if msg.data == b"m0":
                await quick.wait()
            else:
                await asyncio.Event().wait()  # never done
            await msg.ack_sync()
            finished.append(msg.data)
        except asyncio.CancelledError:
            cancelled.append(msg.data)
            raise

    work = queue(handle, max_in_flight=2)
    await publish(js, 2)
    await work.start(js, STREAM, consumer_config())
    await until(lambda: work.in_flight == 2)
    asyncio.get_running_loop().call_later(0.2, quick.set)
    started = time.monotonic()
    await work.stop(grace_s=1.0)
    assert 0.9 < time.monotonic() - started < 3.0
    assert finished == [b"m0"] and cancelled == [b"m1"]
    assert work.in_flight == 0


async def test_a_failing_handler_is_logged_and_its_message_comes_back(js: JetStreamContext) -> None:
    deliveries: list[int] = []

    async def handle(msg: Msg) -> None:
        deliveries.append(msg.metadata.num_delivered or 0)
        if len(deliveries) == 1:
            raise RuntimeError("a bug")
        await msg.ack_sync()

    work = queue(handle, max_in_flight=1)
    await publish(js, 1)
    with capture_logs() as logs:
        await work.start(js, STREAM, consumer_config(ack_wait_s=0.5))
        try:
            await until(lambda: len(deliveries) == 2)
        finally:
            await work.stop()
    assert deliveries == [1, 2]  # unacked, so redelivered after the ack wait
    failures = [log for log in logs if log["event"] == "work-queue handler failed"]
    assert len(failures) == 1 and failures[0]["queue"] == "test"


async def test_the_pull_outlives_its_consumer_going_away_and_coming_back(js: JetStreamContext) -> None:
    handler = Handler()
    handler.release.set()
    work = queue(handler, max_in_flight=1)
    await work.start(js, STREAM, consumer_config())
    try:
        with capture_logs() as logs:
            await js.delete_consumer(STREAM, DURABLE)
            started = time.monotonic()

            def failed_pulls() -> int:
                return sum(log["event"] == "work-queue pull failed" for log in logs)

            await until(lambda: failed_pulls() >= 3)  # it pulls from a consumer that is gone, logged
        assert work.running
        assert time.monotonic() - started >= 2 * 0.1  # backing off retry_delay_s between pulls: no hot loop
        await js.add_consumer(STREAM, consumer_config())
        await publish(js, 1)
        await until(lambda: handler.acked == [b"m0"])
    finally:
        await work.stop()
