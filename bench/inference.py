"""`just bench inference`: embedding throughput and batching, and first-token latency, direct vs service.

Everything runs for real on loopback: a nats-server, tritonserver on CPU with the
local model repository, and one inference process (`python -m services.inference`,
batch jobs off), all started with `deploy.cluster`.

- Embeddings: single-text `EmbedRequest`s over NATS to the service, 1 and then 64
  in flight (texts/s); `batching_gain` is their ratio (Triton's dynamic batcher
  merges concurrent callers). The same loads straight to Triton with tritonclient
  are the baseline. The four loads take turns in short slices, five times, so a
  change in the machine's background load hits them all alike.
- First token: the same prompt to the `generate` model, alternately (a) a direct
  `tritonclient.grpc.aio` `stream_infer` call and (b) a `GenerateRequest` through
  NATS and the service (subscribe to the stream subject, request, first
  `TokenChunk`), both timed on the client side from the call to the first chunk;
  each stream is read to its end before the next starts.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import numpy as np
import tritonclient.grpc.aio as triton_aio
from nats.aio.client import Client as NatsClient
from tritonclient.grpc import InferInput, InferRequestedOutput

from bench.common import LoadResult, percentile, run_load
from deploy.cluster import NatsServer, ServiceProcess
from deploy.triton.local import LocalTriton
from proto.common import ErrorReply, decode, encode
from proto.inference import (
    EmbedReply,
    EmbedRequest,
    GenerateAccepted,
    GenerateRequest,
    GenerateResult,
    TokenChunk,
)
from proto.prompt import PromptSource, build_prompt
from proto.subjects import EMBED, GENERATE, stream_subject

__all__ = ["run"]

EMBED_SLICES = 5  # the four embedding loads run in turn, this many times, so drifts in load hit all
EMBED_SLICE_S = 1.5  # one load runs this long at most per turn
EMBED_SLICE_REQUESTS = {1: 200, 64: 2000}  # and sends at most this many requests per turn
FIRST_TOKEN_ROUNDS = 60  # pairs (direct, service), interleaved
FIRST_TOKEN_MIN_ROUNDS = 20  # ... and at least this many pairs
FIRST_TOKEN_MAX_S = 25.0  # no new pair starts after this (a busy machine is slow)
WARMUP_ROUNDS = 5
REQUEST_TIMEOUT_S = 30.0
TARGET_BATCHING_GAIN = 3.0
TARGET_OVERHEAD_MS = 5.0
SERVICE_ENV = {"INFERENCE_JOBS_ENABLED": "false"}

PROMPT = build_prompt(
    "What is the capital of France?",
    [
        PromptSource(
            1, "https://example.com/germany", "Berlin is the capital of Germany. The city has many museums."
        ),
        PromptSource(
            2,
            "report.pdf, page 3",
            "France is a country in western Europe.\n"
            "Paris is the capital of France. The Seine flows through Paris.",
        ),
    ],
)
MAX_TOKENS = 64

Call = Callable[[int], Awaitable[None]]


def run() -> dict[str, Any]:
    """Start NATS, Triton and the inference service; measure; print a table; return the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as workdir:
        return asyncio.run(_bench(Path(workdir)))


async def _bench(workdir: Path) -> dict[str, Any]:
    server = NatsServer(workdir / "nats")
    server.start()
    triton = LocalTriton.on_free_ports(workdir / "triton")
    service = ServiceProcess(
        "inference",
        {"INFERENCE_NATS_URL": server.url, "INFERENCE_TRITON_GRPC_URL": triton.grpc_url, **SERVICE_ENV},
        workdir,
    )
    try:
        triton.start()
        await asyncio.to_thread(triton.wait_ready)
        service.start()
        await service.wait_healthy(server.url)
        bus = await nats.connect(server.url)
        direct = triton_aio.InferenceServerClient(triton.grpc_url)
        try:
            return await _measure(bus, direct)
        finally:
            await direct.close()
            await bus.close()
    finally:
        service.stop()
        triton.stop()
        server.stop()


async def _measure(bus: NatsClient, direct: triton_aio.InferenceServerClient) -> dict[str, Any]:
    # The machine is shared: its load average says how far to trust the figures.
    load_before = round(os.getloadavg()[0], 2)
    for i in range(WARMUP_ROUNDS):
        await _embed_service(bus, i)
        await _embed_direct(direct, i)
        await _first_token_direct(direct)
        await _first_token_service(bus)
    calls: dict[str, tuple[Call, int]] = {
        "service_c1": (lambda i: _embed_service(bus, i), 1),
        "service_c64": (lambda i: _embed_service(bus, i), 64),
        "direct_c1": (lambda i: _embed_direct(direct, i), 1),
        "direct_c64": (lambda i: _embed_direct(direct, i), 64),
    }
    loads = {
        name: LoadResult(concurrency=concurrency, wall_s=0.0) for name, (_, concurrency) in calls.items()
    }
    turn_gains: list[float] = []  # c64 / c1 through the service, per turn (neighbours in time)
    batches = {name: [0, 0] for name in calls}  # Triton's embed inferences and executions per load
    for _ in range(EMBED_SLICES):
        turn = {}
        for name, (call, concurrency) in calls.items():
            before = await _embed_counts(direct)
            turn[name] = await _load(call, concurrency)
            after = await _embed_counts(direct)
            batches[name] = [total + a - b for total, a, b in zip(batches[name], after, before, strict=True)]
        for name, part in turn.items():
            _add(loads[name], part)
        if turn["service_c1"].rps:
            turn_gains.append(turn["service_c64"].rps / turn["service_c1"].rps)
    direct_ms: list[float] = []
    service: list[_ServiceTiming] = []
    stop_at = time.perf_counter() + FIRST_TOKEN_MAX_S
    while len(direct_ms) < FIRST_TOKEN_ROUNDS and (
        len(direct_ms) < FIRST_TOKEN_MIN_ROUNDS or time.perf_counter() < stop_at
    ):
        direct_ms.append(await _first_token_direct(direct))
        service.append(await _first_token_service(bus))
    results = _results(loads, direct_ms, service)
    results["batching_gain_turn_median"] = round(percentile(turn_gains, 50), 2)
    for name, (inferences, executions) in batches.items():  # rows per forward pass at Triton
        results[f"embed_{name}_triton_avg_batch"] = round(inferences / max(executions, 1), 1)
    results["load_average_1m_start_end"] = [load_before, round(os.getloadavg()[0], 2)]
    _print_table(results)
    return results


async def _load(call: Call, concurrency: int) -> LoadResult:
    result = await run_load(
        call,
        concurrency=concurrency,
        max_requests=EMBED_SLICE_REQUESTS[concurrency],
        max_duration_s=EMBED_SLICE_S,
    )
    if result.errors:  # counted in the results; failed calls add nothing to throughput
        print(f"{len(result.errors)} embed calls failed at c{concurrency}, e.g. {result.errors[0]}")
    return result


async def _embed_counts(direct: triton_aio.InferenceServerClient) -> tuple[int, int]:
    stats = (await direct.get_inference_statistics("embed")).model_stats[0]
    return int(stats.inference_count), int(stats.execution_count)


def _add(total: LoadResult, part: LoadResult) -> None:
    total.wall_s += part.wall_s
    total.latencies_s += part.latencies_s
    total.errors += part.errors


def _text(index: int) -> str:
    # Distinct texts of similar length, so no cache or padding effect favours a run.
    return f"Benchmark sentence number {index}: the quick brown fox jumps over the lazy dog."


async def _embed_service(bus: NatsClient, index: int) -> None:
    request = EmbedRequest(texts=[_text(index)], timeout_ms=int(REQUEST_TIMEOUT_S * 1000))
    message = await bus.request(EMBED, encode(request), timeout=REQUEST_TIMEOUT_S)
    reply: EmbedReply | ErrorReply = decode(message.data, EmbedReply | ErrorReply)
    if isinstance(reply, ErrorReply):
        raise RuntimeError(f"embed failed: {reply.code}: {reply.detail}")
    if reply.dimensions != 384:
        raise RuntimeError(f"embed returned {reply.dimensions} dimensions")


async def _embed_direct(direct: triton_aio.InferenceServerClient, index: int) -> None:
    text = InferInput("TEXT", [1, 1], "BYTES")
    text.set_data_from_numpy(np.array([[_text(index).encode()]], dtype=np.object_))
    result = await direct.infer(
        "embed", [text], outputs=[InferRequestedOutput("EMBEDDING")], client_timeout=REQUEST_TIMEOUT_S
    )
    if result.as_numpy("EMBEDDING").shape != (1, 384):
        raise RuntimeError("embed returned the wrong shape")


def _generate_inputs() -> list[InferInput]:
    # The inputs the service sends (services/inference/model_io.py), built the same way.
    inputs = [
        InferInput("text_input", [1], "BYTES"),
        InferInput("stream", [1], "BOOL"),
        InferInput("sampling_parameters", [1], "BYTES"),
        InferInput("exclude_input_in_output", [1], "BOOL"),
    ]
    inputs[0].set_data_from_numpy(np.array([PROMPT.encode()], dtype=np.object_))
    inputs[1].set_data_from_numpy(np.array([True], dtype=np.bool_))
    inputs[2].set_data_from_numpy(
        np.array([json.dumps({"max_tokens": MAX_TOKENS}).encode()], dtype=np.object_)
    )
    inputs[3].set_data_from_numpy(np.array([True], dtype=np.bool_))
    return inputs


async def _first_token_direct(direct: triton_aio.InferenceServerClient) -> float:
    """Milliseconds from the call to the first streamed chunk; the stream is read to its end."""
    started = time.perf_counter()
    inputs = _generate_inputs()

    async def one_request() -> AsyncIterator[dict[str, Any]]:
        yield {"model_name": "generate", "inputs": inputs}

    first_ms = 0.0
    async for result, error in direct.stream_infer(one_request(), stream_timeout=REQUEST_TIMEOUT_S):
        if error is not None:
            raise RuntimeError(f"direct generate failed: {error}")
        if not first_ms:
            first_ms = (time.perf_counter() - started) * 1000
        if result.get_response().parameters["triton_final_response"].bool_param:
            break
    return first_ms


@dataclass(frozen=True)
class _ServiceTiming:
    """One generation through the service, in milliseconds, as seen by the client and by the service."""

    first_token_ms: float  # client: request sent -> first TokenChunk received
    accepted_ms: float  # client: request sent -> GenerateAccepted received
    inside_ms: float  # service: generation task started -> first chunk from Triton (GenerateResult)


async def _first_token_service(bus: NatsClient) -> _ServiceTiming:
    """Time from the request to the first `TokenChunk`; the stream is read to its end."""
    started = time.perf_counter()
    request_id = uuid.uuid4().hex
    subject = stream_subject(request_id)
    subscription = await bus.subscribe(subject)
    try:
        request = GenerateRequest(
            request_id=request_id,
            prompt=PROMPT,
            stream_subject=subject,
            max_tokens=MAX_TOKENS,
            timeout_ms=int(REQUEST_TIMEOUT_S * 1000),
        )
        message = await bus.request(GENERATE, encode(request), timeout=REQUEST_TIMEOUT_S)
        accepted: GenerateAccepted | ErrorReply = decode(message.data, GenerateAccepted | ErrorReply)
        if isinstance(accepted, ErrorReply):
            raise RuntimeError(f"generate refused: {accepted.code}: {accepted.detail}")
        accepted_ms = (time.perf_counter() - started) * 1000
        first_ms = 0.0
        while True:
            message = await subscription.next_msg(timeout=REQUEST_TIMEOUT_S)
            event: TokenChunk | GenerateResult | ErrorReply = decode(
                message.data, TokenChunk | GenerateResult | ErrorReply
            )
            if isinstance(event, ErrorReply):
                raise RuntimeError(f"generate failed: {event.code}: {event.detail}")
            if not first_ms:
                first_ms = (time.perf_counter() - started) * 1000
            if isinstance(event, GenerateResult):
                return _ServiceTiming(first_ms, accepted_ms, event.first_token_ms)
    finally:
        await subscription.unsubscribe()


def _latency(prefix: str, values_ms: list[float]) -> dict[str, float]:
    return {
        f"{prefix}": round(percentile(values_ms, 50), 2),
        f"{prefix}_p90": round(percentile(values_ms, 90), 2),
        f"{prefix}_p99": round(percentile(values_ms, 99), 2),
    }


def _results(
    loads: dict[str, LoadResult], direct_ms: list[float], service: list[_ServiceTiming]
) -> dict[str, Any]:
    service_ms = [t.first_token_ms for t in service]
    c1, c64 = loads["service_c1"].rps, loads["service_c64"].rps
    direct_c1, direct_c64 = loads["direct_c1"].rps, loads["direct_c64"].rps
    overheads = [s - d for s, d in zip(service_ms, direct_ms, strict=True)]
    results: dict[str, Any] = {
        "embed_throughput_c1": round(c1, 1),
        "embed_throughput_c64": round(c64, 1),
        "batching_gain": round(c64 / c1, 2) if c1 else 0.0,
        "embed_direct_throughput_c1": round(direct_c1, 1),
        "embed_direct_throughput_c64": round(direct_c64, 1),
        "embed_direct_batching_gain": round(direct_c64 / direct_c1, 2) if direct_c1 else 0.0,
        **_latency("first_token_ms_direct", direct_ms),
        **_latency("first_token_ms_service", service_ms),
        "first_token_overhead_ms_p50": round(percentile(service_ms, 50) - percentile(direct_ms, 50), 2),
        "first_token_overhead_ms_paired_p50": round(percentile(overheads, 50), 2),
        "first_token_rounds": len(direct_ms),
        # Where the service's first-token time goes (p50s): the accept round trip, and the
        # generation task's own wait for Triton's first chunk.
        "first_token_service_accepted_ms_p50": round(percentile([t.accepted_ms for t in service], 50), 2),
        "first_token_service_inside_ms_p50": round(percentile([t.inside_ms for t in service], 50), 2),
        "embed_requests": {name: load.ok for name, load in loads.items()},
        "embed_errors": {name: len(load.errors) for name, load in loads.items()},
        "targets": {
            "batching_gain_min": TARGET_BATCHING_GAIN,
            "first_token_overhead_ms_p50_max": TARGET_OVERHEAD_MS,
        },
    }
    for name, load in loads.items():
        results[f"embed_{name}_p50_ms"] = round(percentile(load.latencies_s, 50) * 1000, 2)
    return results


def _print_table(r: dict[str, Any]) -> None:
    rows = [
        ("embed texts/s, 1 in flight", r["embed_direct_throughput_c1"], r["embed_throughput_c1"]),
        ("embed texts/s, 64 in flight", r["embed_direct_throughput_c64"], r["embed_throughput_c64"]),
        ("batching gain (c64 / c1)", r["embed_direct_batching_gain"], r["batching_gain"]),
        (
            "Triton batch size at c64",
            r["embed_direct_c64_triton_avg_batch"],
            r["embed_service_c64_triton_avg_batch"],
        ),
        ("first token ms p50", r["first_token_ms_direct"], r["first_token_ms_service"]),
        ("first token ms p90", r["first_token_ms_direct_p90"], r["first_token_ms_service_p90"]),
        ("first token ms p99", r["first_token_ms_direct_p99"], r["first_token_ms_service_p99"]),
    ]
    print(f"{'':32} {'direct Triton':>14} {'via NATS+service':>17}")
    for label, direct, service in rows:
        print(f"{label:32} {direct:>14} {service:>17}")
    print(
        f"service first token, p50: accepted after {r['first_token_service_accepted_ms_p50']} ms; "
        f"inside the service, task start to Triton's first chunk {r['first_token_service_inside_ms_p50']} ms"
    )
    print(
        f"batching gain per turn, median: {r['batching_gain_turn_median']}; "
        f"1-minute load average at start and end: {r['load_average_1m_start_end']} (2 cores)"
    )
    gain_ok = r["batching_gain"] >= TARGET_BATCHING_GAIN
    overhead_ok = r["first_token_overhead_ms_p50"] <= TARGET_OVERHEAD_MS
    gain_verdict = "met" if gain_ok else "MISSED"
    print(
        f"batching_gain {r['batching_gain']} (target >= {TARGET_BATCHING_GAIN}: {gain_verdict}); "
        f"first-token overhead p50 {r['first_token_overhead_ms_p50']} ms "
        f"(paired {r['first_token_overhead_ms_paired_p50']} ms; target <= {TARGET_OVERHEAD_MS}: "
        f"{'met' if overhead_ok else 'MISSED'})",
        flush=True,
    )
