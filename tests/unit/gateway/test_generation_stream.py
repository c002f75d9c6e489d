"""The gateway's side of a token stream on a real nats-server, with a scripted inference replica.

A stream that goes quiet ends with a clear error, not a wait until the chat's
deadline; the whole system losing NATS mid-answer is in
tests/integration/test_nats_restart.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from faststream.nats import NatsBroker

from deploy.cluster import NatsServer
from proto.common import decode, encode
from proto.inference import GenerateAccepted, GenerateRequest, GenerateResult, TokenChunk
from proto.subjects import GENERATE
from runtime.bus import make_broker
from runtime.errors import DeadlineExceeded, Unavailable
from services.gateway.generation import stream_generation

CHAT_TIMEOUT_S = 30.0


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[tuple[NatsBroker, Any]]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    broker: NatsBroker = make_broker(server.url, "gateway-test")
    await broker.connect()
    replica = await nats.connect(server.url)  # plays the inference replica
    try:
        yield broker, replica
    finally:
        await replica.close()
        await broker.stop()
        server.stop()


async def _replica_sending(replica: Any, chunks: int, *, finish: bool) -> None:
    """Accept every generation, stream `chunks` chunks, then end it or fall silent."""

    async def on_request(message: Any) -> None:
        request = decode(message.data, GenerateRequest)
        await message.respond(encode(GenerateAccepted(request_id=request.request_id, model="scripted")))
        for seq in range(chunks):
            chunk = TokenChunk(request_id=request.request_id, seq=seq, text=f"w{seq} ")
            await replica.publish(request.stream_subject, encode(chunk))
        if finish:
            result = GenerateResult(
                request_id=request.request_id,
                answer="".join(f"w{seq} " for seq in range(chunks)),
                tokens=chunks,
                model="scripted",
                first_token_ms=1.0,
                total_ms=2.0,
            )
            await replica.publish(request.stream_subject, encode(result))

    await replica.subscribe(GENERATE, cb=on_request)
    await replica.flush()


async def _drain(broker: NatsBroker, idle_timeout_s: float) -> list[Any]:
    events = stream_generation(
        broker,
        request_id="r1",
        prompt="q?",
        max_tokens=10,
        accept_timeout_s=5.0,
        timeout_s=CHAT_TIMEOUT_S,
        idle_timeout_s=idle_timeout_s,
    )
    return [event async for event in events]


async def test_a_whole_stream_is_yielded_in_order(bus: tuple[NatsBroker, Any]) -> None:
    broker, replica = bus
    await _replica_sending(replica, 3, finish=True)
    events = await _drain(broker, idle_timeout_s=5.0)
    assert [e.seq for e in events[:-1]] == [0, 1, 2]
    assert isinstance(events[-1], GenerateResult) and events[-1].answer == "w0 w1 w2 "


async def test_a_stream_that_falls_silent_ends_at_the_idle_timeout(bus: tuple[NatsBroker, Any]) -> None:
    broker, replica = bus
    await _replica_sending(replica, 2, finish=False)  # as a replica killed mid-answer
    started = time.monotonic()
    with pytest.raises(Unavailable, match="stopped streaming"):
        await _drain(broker, idle_timeout_s=0.5)
    assert time.monotonic() - started < CHAT_TIMEOUT_S / 2  # not the chat's deadline


async def test_before_the_first_chunk_only_the_chat_deadline_bounds_the_wait(
    bus: tuple[NatsBroker, Any],
) -> None:
    broker, replica = bus
    await _replica_sending(replica, 0, finish=False)  # accepted, queued at Triton, nothing yet
    events = stream_generation(
        broker,
        request_id="r2",
        prompt="q?",
        max_tokens=10,
        accept_timeout_s=5.0,
        timeout_s=1.0,
        idle_timeout_s=0.1,
    )
    with pytest.raises(DeadlineExceeded):
        _ = [event async for event in events]
