"""The inference handlers on a real nats-server, in process, with Triton unreachable.

What the handlers decide on their own is tested here: refusing bad requests
with an `ErrorReply`, accepting a generation and ending its stream with an
error when Triton cannot be reached, cancellation, and shutdown. The paths
through a running Triton are in `tests/integration/test_inference_bus.py`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import nats
import pytest
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from nats.aio.subscription import Subscription

from deploy.cluster import NatsServer, free_port
from proto.common import ErrorCode, ErrorReply, decode, encode
from proto.inference import (
    CancelGenerate,
    EmbedReply,
    EmbedRequest,
    GenerateAccepted,
    GenerateRequest,
    GenerateResult,
    TokenChunk,
)
from proto.stats import InferenceStats, StatsRequest
from proto.subjects import EMBED, GENERATE, GENERATE_CANCEL, INFERENCE_STATS, stream_subject
from runtime.bus import make_broker
from services.inference.handlers import Generations, register_handlers
from services.inference.settings import InferenceSettings
from services.inference.triton_client import TritonModels

pytestmark = pytest.mark.timeout(60)

REPLY_TIMEOUT_S = 5.0
StreamEvent = TokenChunk | GenerateResult | ErrorReply


@dataclass
class Handlers:
    """The handlers on a broker of their own, and a plain client."""

    broker: NatsBroker
    models: TritonModels
    generations: Generations
    client: NatsClient


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A nats-server of this module only (no inference service of another test listens)."""
    server = NatsServer(tmp_path_factory.mktemp("handlers-nats"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def handlers(bus: NatsServer) -> AsyncIterator[Handlers]:
    settings = InferenceSettings(
        nats_url=bus.url,
        triton_grpc_url=f"127.0.0.1:{free_port()}",  # nothing listens: Triton is down
        max_prompt_chars=200,
        max_embed_texts=3,
    )
    broker = make_broker(settings.nats_url, "inference")
    models = TritonModels(settings)
    generations = Generations(broker, models)
    register_handlers(broker, models, generations, settings)
    await broker.start()
    client = await nats.connect(bus.url)
    try:
        yield Handlers(broker, models, generations, client)
    finally:
        await client.close()
        await generations.stop_all()
        await broker.stop()
        await models.close()


async def _request(client: NatsClient, subject: str, payload: bytes) -> bytes:
    return (await client.request(subject, payload, timeout=REPLY_TIMEOUT_S)).data


async def _start(
    handlers: Handlers, prompt: str, timeout_ms: int
) -> tuple[str, Subscription, GenerateAccepted | ErrorReply]:
    request_id = uuid.uuid4().hex
    subject = stream_subject(request_id)
    subscription = await handlers.client.subscribe(subject)
    request = GenerateRequest(
        request_id=request_id, prompt=prompt, stream_subject=subject, timeout_ms=timeout_ms
    )
    data = await _request(handlers.client, GENERATE, encode(request))
    reply: GenerateAccepted | ErrorReply = decode(data, GenerateAccepted | ErrorReply)
    return request_id, subscription, reply


async def _next_event(subscription: Subscription, timeout_s: float) -> StreamEvent:
    event: StreamEvent = decode((await subscription.next_msg(timeout=timeout_s)).data, StreamEvent)
    return event


@pytest.mark.parametrize(
    ("prompt", "code"),
    [("", ErrorCode.BAD_REQUEST), ("  \n\t", ErrorCode.BAD_REQUEST), ("x" * 201, ErrorCode.TOO_LARGE)],
)
async def test_bad_prompts_are_refused_before_acceptance(handlers: Handlers, prompt: str, code: str) -> None:
    _, subscription, reply = await _start(handlers, prompt, timeout_ms=1_000)
    assert isinstance(reply, ErrorReply)
    assert (reply.code, reply.service) == (code, "inference")
    assert handlers.generations.running == 0
    assert subscription.pending_msgs == 0


@pytest.mark.parametrize("payload", [b"{oops", b'{"type": "generate.request", "prompt": 3}', b"null"])
async def test_undecodable_requests_get_bad_request(handlers: Handlers, payload: bytes) -> None:
    reply: ErrorReply = decode(await _request(handlers.client, GENERATE, payload), ErrorReply)
    assert reply.code == ErrorCode.BAD_REQUEST
    assert reply.detail


async def test_accepted_generation_ends_with_unavailable_when_triton_is_down(handlers: Handlers) -> None:
    started = time.monotonic()
    request_id, subscription, reply = await _start(handlers, "What is the capital of France?", timeout_ms=600)
    assert reply == GenerateAccepted(request_id=request_id, model="generate")
    event = await _next_event(subscription, timeout_s=5.0)
    assert isinstance(event, ErrorReply), event
    assert (event.code, event.service) == (ErrorCode.UNAVAILABLE, "inference")
    assert time.monotonic() - started < 3.0  # the request's 0.6 s deadline, plus one retry pause at most
    assert (handlers.models.in_flight, handlers.models.queued) == (0, 0)


async def test_cancel_stops_a_running_generation_silently(handlers: Handlers) -> None:
    # With Triton down the generation retries until its deadline: it is running when cancelled.
    request_id, subscription, reply = await _start(handlers, "Still there?", timeout_ms=30_000)
    assert isinstance(reply, GenerateAccepted)
    assert handlers.generations.running == 1
    await handlers.client.publish(GENERATE_CANCEL, encode(CancelGenerate(request_id=request_id)))
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    while handlers.generations.running:  # the cancellation arrives over NATS: wait for it
        assert time.monotonic() < deadline, "the generation was not cancelled"
        await asyncio.sleep(0.01)
    # The service's connection delivers in order: a probe sent now arrives after anything sent before.
    await handlers.broker.publish(CancelGenerate(request_id="probe"), subscription.subject)
    probe = await subscription.next_msg(timeout=REPLY_TIMEOUT_S)
    assert decode(probe.data, CancelGenerate).request_id == "probe"  # no final message came first
    assert (handlers.models.in_flight, handlers.models.queued) == (0, 0)


async def test_cancel_of_unknown_generation_is_a_no_op(handlers: Handlers) -> None:
    assert handlers.generations.cancel("nobody") is False
    await handlers.client.publish(GENERATE_CANCEL, encode(CancelGenerate(request_id="nobody")))
    await handlers.client.publish(GENERATE_CANCEL, b"not json")
    _, _, reply = await _start(handlers, "", timeout_ms=1_000)
    assert isinstance(reply, ErrorReply)  # the subscribers still answer


async def test_shutdown_tells_each_caller_the_replica_is_going(handlers: Handlers) -> None:
    ids_and_streams = [await _start(handlers, f"Question {n}?", timeout_ms=30_000) for n in range(2)]
    assert handlers.generations.running == 2
    await handlers.generations.stop_all()
    assert handlers.generations.running == 0
    for _, subscription, _ in ids_and_streams:
        event = await _next_event(subscription, timeout_s=REPLY_TIMEOUT_S)
        assert isinstance(event, ErrorReply)
        assert event.code == ErrorCode.UNAVAILABLE and "shutting down" in event.detail


@pytest.mark.parametrize(
    "texts",
    [pytest.param([], id="none"), pytest.param(["a", "b", "c", "d"], id="too-many"), ["x" * 9_000]],
)
async def test_bad_embed_requests_are_refused(handlers: Handlers, texts: list[str]) -> None:
    data = await _request(handlers.client, EMBED, encode(EmbedRequest(texts=texts)))
    reply: EmbedReply | ErrorReply = decode(data, EmbedReply | ErrorReply)
    assert isinstance(reply, ErrorReply)
    assert (reply.code, reply.service) == (ErrorCode.BAD_REQUEST, "inference")


async def test_embed_with_triton_down_is_unavailable_within_its_deadline(handlers: Handlers) -> None:
    started = time.monotonic()
    data = await _request(handlers.client, EMBED, encode(EmbedRequest(texts=["hello"], timeout_ms=500)))
    reply: ErrorReply = decode(data, ErrorReply)
    assert reply.code == ErrorCode.UNAVAILABLE
    assert time.monotonic() - started < 3.0


async def test_embed_requests_are_handled_concurrently(handlers: Handlers) -> None:
    # Triton is down, so each call holds its in-flight slot while it retries: all three at once
    # prove the subscriber does not handle one message at a time (which would defeat batching).
    # Each holds it until its deadline: long enough that a busy machine (the whole suite
    # running) still sees all three in flight when the stats reply is read.
    request = encode(EmbedRequest(texts=["hello"], timeout_ms=6_000))
    calls = [asyncio.create_task(handlers.client.request(EMBED, request, timeout=15.0)) for _ in range(3)]
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    while handlers.models.in_flight < 3:  # the requests arrive over NATS: wait for them
        assert time.monotonic() < deadline, f"only {handlers.models.in_flight} embed call(s) in flight"
        await asyncio.sleep(0.01)
    # The queue metric: the in-flight calls as the replica reports them on the bus.
    stats: InferenceStats = decode(
        await _request(handlers.client, INFERENCE_STATS, encode(StatsRequest())), InferenceStats
    )
    assert stats.in_flight == 3 and stats.queued == 0
    replies: list[ErrorReply] = [decode(msg.data, ErrorReply) for msg in await asyncio.gather(*calls)]
    assert {reply.code for reply in replies} == {ErrorCode.UNAVAILABLE}
