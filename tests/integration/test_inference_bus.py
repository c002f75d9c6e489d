"""The inference service's bus API over real NATS and the real tritonserver (CPU).

The module runs its own nats-server, tritonserver and inference process, so
that stopping Triton or reading the service's log disturbs no other test.
Clients speak plain nats-py with `proto` messages, as any system on the bus.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import nats
import numpy as np
import pytest
import tritonclient.grpc.aio as triton_aio
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from deploy.cluster import NatsServer, ServiceProcess
from deploy.triton.local import LocalTriton
from proto.common import ErrorCode, ErrorReply, decode, encode
from proto.health import HealthReply, HealthRequest
from proto.inference import (
    CancelGenerate,
    EmbedReply,
    EmbedRequest,
    GenerateAccepted,
    GenerateRequest,
    GenerateResult,
    ImageReply,
    ImageRequest,
    TokenChunk,
)
from proto.stats import InferenceStats, StatsRequest
from proto.subjects import (
    EMBED,
    GENERATE,
    GENERATE_CANCEL,
    IMAGE,
    INFERENCE_STATS,
    health_subject,
    stream_subject,
)
from tests.triton_fixture import start_triton

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REPLY_TIMEOUT_S = 10.0  # one request-reply round trip (accept, embed, health)
STREAM_TIMEOUT_S = 30.0  # a whole generation stream

FRANCE_PROMPT = """Answer the question using only the numbered sources below. Cite sources like [1].

Sources:
[1] https://example.com/germany
Berlin is the capital of Germany. The city has many museums.

[2] report.pdf, page 3
France is a country in western Europe.
Paris is the capital of France. The Seine flows through Paris.

Question: What is the capital of France?
Answer:"""
FRANCE_ANSWER = "Paris is the capital of France. [2]"

# Three long, relevant sentences: a stream of ~150 chunks at 10 ms each, long enough to interrupt.
_KEEPER = (
    "The lighthouse keeper kept a careful logbook of every passing ship, every storm, every broken lamp, "
    "every delivery of oil and bread, every visitor from the mainland and every change of the wind"
)
LONG_PROMPT = (
    "Answer the question using only the numbered sources below. Cite sources like [1].\n\nSources:\n"
    + "\n\n".join(f"[{y}] log-{y}\n{_KEEPER} in year {y}." for y in range(1, 4))
    + "\n\nQuestion: What did the lighthouse keeper keep?\nAnswer:"
)

StreamEvent = TokenChunk | GenerateResult | ErrorReply
_T = TypeVar("_T")


@dataclass
class Inference:
    """The module's own servers and a plain NATS client."""

    nats: NatsServer
    triton: LocalTriton
    service: ServiceProcess
    client: NatsClient


@dataclass
class Stream:
    """Everything published on one generation's stream subject, as it arrives."""

    request_id: str
    events: list[StreamEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_message(self, message: Msg) -> None:
        self.events.append(decode(message.data, StreamEvent))
        self.changed.set()

    @property
    def chunks(self) -> list[TokenChunk]:
        return [e for e in self.events if isinstance(e, TokenChunk)]

    @property
    def finals(self) -> list[GenerateResult | ErrorReply]:
        return [e for e in self.events if not isinstance(e, TokenChunk)]

    async def wait_until(self, condition: Callable[[], bool], timeout_s: float) -> None:
        """Wait for messages until `condition()` holds; fail after `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    async def wait_end(self, timeout_s: float = STREAM_TIMEOUT_S) -> GenerateResult | ErrorReply:
        """The message that ended the stream."""
        await self.wait_until(lambda: bool(self.finals), timeout_s)
        return self.finals[0]


@pytest.fixture(scope="module")
def own_triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    """A tritonserver of this module only: one test stops it."""
    with start_triton(tmp_path_factory) as server:
        yield server


@asynccontextmanager
async def _serving(triton: LocalTriton, workdir: Path, **env: str) -> AsyncIterator[Inference]:
    """A nats-server of its own and one inference process on `triton` (batch jobs off)."""
    server = NatsServer(workdir / "nats")
    server.start()
    env = {
        "INFERENCE_NATS_URL": server.url,
        "INFERENCE_TRITON_GRPC_URL": triton.grpc_url,
        "INFERENCE_JOBS_ENABLED": "false",
        **env,
    }
    service = ServiceProcess("inference", env, workdir)
    service.start()
    client: NatsClient | None = None
    try:
        await service.wait_healthy(server.url)
        client = await nats.connect(server.url)
        yield Inference(server, triton, service, client)
    finally:
        if client is not None:
            await client.close()
        service.stop()
        server.stop()


@pytest.fixture(scope="module")
async def inference(
    own_triton: LocalTriton, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Inference]:
    """The inference service with its default settings (only the bus API is under test)."""
    async with _serving(own_triton, tmp_path_factory.mktemp("inference-bus")) as running:
        yield running


# Limits far below what these take here, whatever deadline the caller asks for: LONG_PROMPT's
# answer streams for over a second, a 1024-pixel image takes about 90 ms to draw.
GENERATE_LIMIT_S = 0.5
IMAGE_LIMIT_S = 0.02


@pytest.fixture(scope="module")
async def hurried(
    own_triton: LocalTriton, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Inference]:
    """A second inference service, on a bus of its own, whose generation and image limits are short."""
    async with _serving(
        own_triton,
        tmp_path_factory.mktemp("inference-hurried"),
        INFERENCE_GENERATE_TIMEOUT_S=str(GENERATE_LIMIT_S),
        INFERENCE_IMAGE_TIMEOUT_S=str(IMAGE_LIMIT_S),
    ) as running:
        yield running


async def _request(client: NatsClient, subject: str, payload: bytes) -> bytes:
    reply = await client.request(subject, payload, timeout=REPLY_TIMEOUT_S)
    return reply.data


async def _generate(
    inference: Inference, prompt: str, *, max_tokens: int = 300, timeout_ms: int = 20_000
) -> tuple[GenerateAccepted | ErrorReply, Stream]:
    """Subscribe to a new stream subject, then ask for the generation."""
    stream = Stream(uuid.uuid4().hex)
    subject = stream_subject(stream.request_id)
    await inference.client.subscribe(subject, cb=stream.on_message)
    request = GenerateRequest(
        request_id=stream.request_id,
        prompt=prompt,
        stream_subject=subject,
        max_tokens=max_tokens,
        timeout_ms=timeout_ms,
    )
    data = await _request(inference.client, GENERATE, encode(request))
    accepted: GenerateAccepted | ErrorReply = decode(data, GenerateAccepted | ErrorReply)
    return accepted, stream


async def _health(client: NatsClient) -> HealthReply:
    reply: HealthReply = decode(
        await _request(client, health_subject("inference"), encode(HealthRequest())), HealthReply
    )
    return reply


async def _answer(inference: Inference, prompt: str = FRANCE_PROMPT) -> str:
    accepted, stream = await _generate(inference, prompt)
    assert isinstance(accepted, GenerateAccepted), accepted
    end = await stream.wait_end()
    assert isinstance(end, GenerateResult), end
    return end.answer


def _log_events(service: ServiceProcess, event: str) -> list[dict[str, object]]:
    lines = [line for line in service.log().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    return [r for r in records if r.get("event") == event]


async def test_generation_streams_ordered_chunks_then_one_result(inference: Inference) -> None:
    accepted, stream = await _generate(inference, FRANCE_PROMPT)
    assert accepted == GenerateAccepted(request_id=stream.request_id, model="extractive-cpu")
    result = await stream.wait_end()
    await _health(inference.client)  # a round trip after the result: anything sent before it has arrived
    assert isinstance(result, GenerateResult), result
    assert stream.events[-1] is result and len(stream.finals) == 1
    chunks = stream.chunks
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert {c.request_id for c in chunks} == {stream.request_id}
    assert result.answer == "".join(c.text for c in chunks) == FRANCE_ANSWER
    assert result.tokens == len(chunks) == 7
    assert (result.finish_reason, result.prompt_tokens) == ("stop", len(FRANCE_PROMPT.split()))
    assert result.model == "extractive-cpu"
    assert 0 < result.first_token_ms <= result.total_ms < STREAM_TIMEOUT_S * 1000


async def test_a_generation_cut_by_max_tokens_says_so(inference: Inference) -> None:
    _, stream = await _generate(inference, FRANCE_PROMPT, max_tokens=3)
    result = await stream.wait_end()
    assert isinstance(result, GenerateResult), result
    assert (result.tokens, result.finish_reason) == (3, "length")
    assert FRANCE_ANSWER.startswith(result.answer)


async def test_unknown_fields_are_ignored(inference: Inference) -> None:
    request_id = uuid.uuid4().hex
    stream = Stream(request_id)
    await inference.client.subscribe(stream_subject(request_id), cb=stream.on_message)
    payload = {
        "type": "generate.request",
        "schema_version": 2,
        "request_id": request_id,
        "prompt": FRANCE_PROMPT,
        "stream_subject": stream_subject(request_id),
        "a_field_from_the_future": {"nested": [1, 2]},
    }
    data = await _request(inference.client, GENERATE, json.dumps(payload).encode())
    accepted: GenerateAccepted = decode(data, GenerateAccepted)
    assert accepted.request_id == request_id
    result = await stream.wait_end()
    assert isinstance(result, GenerateResult) and result.answer == FRANCE_ANSWER


def _generate_payload(**fields: object) -> bytes:
    request_id = uuid.uuid4().hex
    payload: dict[str, object] = {
        "type": "generate.request",
        "request_id": request_id,
        "prompt": FRANCE_PROMPT,
        "stream_subject": stream_subject(request_id),
    }
    payload.update(fields)
    return json.dumps({k: v for k, v in payload.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        pytest.param(b"{not json", ErrorCode.BAD_REQUEST, id="malformed-json"),
        pytest.param(b"", ErrorCode.BAD_REQUEST, id="empty-body"),
        pytest.param(b"[1, 2, 3]", ErrorCode.BAD_REQUEST, id="not-an-object"),
        pytest.param(_generate_payload(prompt=42), ErrorCode.BAD_REQUEST, id="prompt-not-a-string"),
        pytest.param(_generate_payload(max_tokens="many"), ErrorCode.BAD_REQUEST, id="max-tokens-not-an-int"),
        pytest.param(_generate_payload(request_id=None), ErrorCode.BAD_REQUEST, id="missing-request-id"),
        pytest.param(_generate_payload(type="embed.request"), ErrorCode.BAD_REQUEST, id="wrong-type-tag"),
        pytest.param(_generate_payload(prompt=""), ErrorCode.BAD_REQUEST, id="empty-prompt"),
        pytest.param(_generate_payload(prompt=" \n\t "), ErrorCode.BAD_REQUEST, id="blank-prompt"),
        pytest.param(_generate_payload(prompt="x" * 48_001), ErrorCode.TOO_LARGE, id="oversized-prompt"),
    ],
)
async def test_bad_generate_requests_get_an_error_reply(
    inference: Inference, payload: bytes, code: str
) -> None:
    reply: GenerateAccepted | ErrorReply = decode(
        await _request(inference.client, GENERATE, payload), GenerateAccepted | ErrorReply
    )
    assert isinstance(reply, ErrorReply), reply
    assert (reply.code, reply.service) == (code, "inference")
    assert reply.detail and "Traceback" not in reply.detail


async def test_out_of_range_max_tokens_ends_the_stream_with_an_error(inference: Inference) -> None:
    accepted, stream = await _generate(inference, FRANCE_PROMPT, max_tokens=0)
    if isinstance(accepted, ErrorReply):  # refused at once, or accepted and refused on the stream
        end: GenerateResult | ErrorReply = accepted
    else:
        end = await stream.wait_end()
    assert isinstance(end, ErrorReply) and end.code == ErrorCode.BAD_REQUEST
    assert "max_tokens" in end.detail
    assert stream.chunks == []


async def test_service_still_serves_after_bad_requests(inference: Inference) -> None:
    for payload in (b"{not json", _generate_payload(prompt=""), _generate_payload(prompt="x" * 60_000)):
        assert isinstance(decode(await _request(inference.client, GENERATE, payload), ErrorReply), ErrorReply)
    assert inference.service.process.poll() is None
    assert await _answer(inference) == FRANCE_ANSWER
    assert (await _health(inference.client)).ready


async def _embed(client: NatsClient, texts: list[str], timeout_ms: int = 5_000) -> EmbedReply | ErrorReply:
    data = await _request(client, EMBED, encode(EmbedRequest(texts=texts, timeout_ms=timeout_ms)))
    reply: EmbedReply | ErrorReply = decode(data, EmbedReply | ErrorReply)
    return reply


async def test_embed_returns_one_normalised_vector_per_text_in_order(inference: Inference) -> None:
    texts = ["The cat sat on the mat.", "Triton serves models over gRPC.", "Ünïcödé ✓", "a " * 300, ""]
    reply = await _embed(inference.client, texts)
    assert isinstance(reply, EmbedReply), reply
    assert (reply.model, reply.dimensions) == ("all-MiniLM-L6-v2-int8", 384)
    vectors = np.array(reply.vectors)
    assert vectors.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    singles = await asyncio.gather(*(_embed(inference.client, [text]) for text in reversed(texts)))
    alone = np.array([s.vectors[0] for s in reversed(singles) if isinstance(s, EmbedReply)])
    assert alone.shape == vectors.shape
    assert float(np.max(np.abs(alone - vectors))) < 1e-4  # row i is text i's own vector
    assert not np.allclose(vectors[0], vectors[1])


async def test_concurrent_embed_callers_are_batched_by_triton(inference: Inference) -> None:
    triton = triton_aio.InferenceServerClient(inference.triton.grpc_url)

    async def counts() -> tuple[int, int]:
        stats = (await triton.get_inference_statistics("embed")).model_stats[0]
        return int(stats.inference_count), int(stats.execution_count)

    try:
        before = await counts()
        replies = await asyncio.gather(*(_embed(inference.client, [f"caller {i}"]) for i in range(32)))
        after = await counts()
    finally:
        await triton.close()
    assert all(isinstance(r, EmbedReply) and len(r.vectors) == 1 for r in replies)
    inferences, executions = after[0] - before[0], after[1] - before[1]
    assert inferences == 32
    assert executions < inferences  # callers of the service shared Triton batches


@pytest.mark.parametrize(
    "texts",
    [
        pytest.param([f"text {i}" for i in range(257)], id="too-many-texts"),
        pytest.param([], id="no-texts"),
        pytest.param(["x" * 8_001], id="text-too-long"),
    ],
)
async def test_bad_embed_requests_get_an_error_reply(inference: Inference, texts: list[str]) -> None:
    reply = await _embed(inference.client, texts)
    assert isinstance(reply, ErrorReply), reply
    assert reply.code in (ErrorCode.BAD_REQUEST, ErrorCode.TOO_LARGE)
    assert reply.service == "inference"
    assert isinstance(await _embed(inference.client, ["still here"]), EmbedReply)


async def test_malformed_embed_request_gets_an_error_reply(inference: Inference) -> None:
    for payload in (b"{not json", b'{"type": "embed.request", "texts": "not a list"}'):
        reply: ErrorReply = decode(await _request(inference.client, EMBED, payload), ErrorReply)
        assert reply.code == ErrorCode.BAD_REQUEST


async def test_cancel_mid_stream_stops_it(inference: Inference) -> None:
    accepted, stream = await _generate(inference, LONG_PROMPT, max_tokens=1000)
    assert isinstance(accepted, GenerateAccepted), accepted
    await stream.wait_until(lambda: len(stream.chunks) >= 2, STREAM_TIMEOUT_S)
    await inference.client.publish(GENERATE_CANCEL, encode(CancelGenerate(request_id=stream.request_id)))
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    # The service's log file has no event to await: poll it within a deadline.
    while not _cancelled_in_log(inference.service, stream.request_id):
        assert time.monotonic() < deadline, inference.service.log()[-3000:]
        await asyncio.sleep(0.02)
    # The service publishes in order: once the next generation ended, the cancelled one sent all it will.
    assert await _answer(inference) == FRANCE_ANSWER
    assert stream.finals == [], stream.finals
    chunks = stream.chunks
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert len(chunks) < 100  # the whole answer is ~150 chunks
    triton_log = inference.triton.log_path
    while "generate cancelled after" not in triton_log.read_text():
        assert time.monotonic() < deadline, "the cancellation did not reach Triton"
        await asyncio.sleep(0.02)


def _cancelled_in_log(service: ServiceProcess, request_id: str) -> bool:
    requested = [e for e in _log_events(service, "cancel requested") if e.get("request_id") == request_id]
    cancelled = [
        e for e in _log_events(service, "generation cancelled") if e.get("correlation_id") == request_id
    ]
    return bool(requested) and bool(cancelled)


async def test_cancel_of_an_unknown_generation_is_harmless(inference: Inference) -> None:
    await inference.client.publish(GENERATE_CANCEL, encode(CancelGenerate(request_id="no-such-request")))
    await inference.client.publish(GENERATE_CANCEL, b"{not json")
    assert await _answer(inference) == FRANCE_ANSWER


async def test_health_reports_triton_readiness(inference: Inference) -> None:
    health = await _health(inference.client)
    assert health.service == "inference"
    assert health.ready
    assert health.checks == {
        "triton": True,
        "triton.generate": True,
        "triton.embed": True,
        "triton.image": True,
    }


async def test_a_generation_past_the_services_limit_times_out_and_its_triton_stream_stops(
    hurried: Inference,
) -> None:
    cancellations = len(_triton_cancellations(hurried.triton))
    accepted, stream = await _generate(hurried, LONG_PROMPT, max_tokens=1000, timeout_ms=20_000)
    assert isinstance(accepted, GenerateAccepted), accepted
    started = time.monotonic()
    end = await stream.wait_end()
    assert isinstance(end, ErrorReply), end
    assert (end.code, end.service) == (ErrorCode.TIMEOUT, "inference")
    assert time.monotonic() - started < 10  # cut by the service's limit, long before the caller's 20 s
    assert [c.seq for c in stream.chunks] == list(range(len(stream.chunks)))
    await _until_idle(hurried.client)
    # Triton stopped generating: the model saw the cancellation before its last chunk.
    found = await _poll(lambda: _triton_cancellations(hurried.triton)[cancellations:], REPLY_TIMEOUT_S)
    assert found, "the deadline did not reach Triton as a cancellation"
    sent, total = found[0]
    assert len(stream.chunks) <= sent < total


async def test_an_image_past_the_services_limit_times_out_and_frees_its_slot(hurried: Inference) -> None:
    request = ImageRequest(prompt="a lighthouse at night", width=1024, height=1024, timeout_ms=20_000)
    data = await _request(hurried.client, IMAGE, encode(request))
    reply: ImageReply | ErrorReply = decode(data, ImageReply | ErrorReply)
    assert isinstance(reply, ErrorReply), "the image was drawn within the service's limit"
    assert (reply.code, reply.service) == (ErrorCode.TIMEOUT, "inference")
    await _until_idle(hurried.client)


def _triton_cancellations(triton: LocalTriton) -> list[tuple[int, int]]:
    """(chunks sent, chunks planned) of each generation the stand-in model saw cancelled."""
    found = re.findall(r"generate cancelled after (\d+) of (\d+) chunks", triton.log_path.read_text())
    return [(int(sent), int(total)) for sent, total in found]


async def _poll(probe: Callable[[], _T], timeout_s: float) -> _T:
    """`probe()` once it is truthy; its last falsy value after `timeout_s` (a log has no event to await)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.02)


async def _until_idle(client: NatsClient) -> None:
    """Wait until the service reports no Triton request and no generation left (fail after a while)."""
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    while True:
        stats = await _stats(client)
        if (stats.in_flight, stats.queued, stats.generations) == (0, 0, 0):
            return
        assert time.monotonic() < deadline, stats
        await asyncio.sleep(0.02)


async def _stats(client: NatsClient) -> InferenceStats:
    reply: InferenceStats = decode(
        await _request(client, INFERENCE_STATS, encode(StatsRequest())), InferenceStats
    )
    return reply


# Last in the module: it stops this module's Triton and starts it again.
async def test_triton_down_mid_stream_then_recovery(inference: Inference) -> None:
    try:
        await _triton_down_then_back(inference)
    finally:
        if not inference.triton.is_running():
            inference.triton.start()
            inference.triton.wait_ready()


async def _triton_down_then_back(inference: Inference) -> None:
    triton = inference.triton
    deadline_ms = 15_000
    accepted, stream = await _generate(inference, LONG_PROMPT, max_tokens=1000, timeout_ms=deadline_ms)
    assert isinstance(accepted, GenerateAccepted), accepted
    await stream.wait_until(lambda: len(stream.chunks) >= 2, STREAM_TIMEOUT_S)
    stopped = time.monotonic()
    await asyncio.to_thread(triton.stop, 0)  # a crash: SIGKILL
    end = await stream.wait_end(timeout_s=deadline_ms / 1000)
    assert time.monotonic() - stopped < deadline_ms / 1000
    assert isinstance(end, ErrorReply), end
    assert (end.code, end.service) == (ErrorCode.UNAVAILABLE, "inference")
    assert [c.seq for c in stream.chunks] == list(range(len(stream.chunks)))

    health = await _health(inference.client)
    assert not health.ready
    assert health.checks["triton"] is False

    accepted, while_down = await _generate(inference, FRANCE_PROMPT, timeout_ms=1_000)
    assert isinstance(accepted, GenerateAccepted), accepted
    refused = await while_down.wait_end(timeout_s=REPLY_TIMEOUT_S)
    assert isinstance(refused, ErrorReply) and refused.code in (ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT)
    down = await _embed(inference.client, ["nobody home"], timeout_ms=1_000)
    assert isinstance(down, ErrorReply) and down.code in (ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT)

    await asyncio.to_thread(triton.start)
    assert await asyncio.to_thread(triton.wait_ready)
    await inference.service.wait_healthy(inference.nats.url, timeout_s=30)
    assert (await _health(inference.client)).checks["triton"] is True
    assert await _answer(inference) == FRANCE_ANSWER
    reply = await _embed(inference.client, ["back again"])
    assert isinstance(reply, EmbedReply) and len(reply.vectors[0]) == 384
