"""`just bench jobs`: batch-job throughput, chat latency beside a batch, and what a crash costs.

Everything runs for real on loopback: a nats-server, tritonserver on CPU with
the local model repository and the four services (`deploy.cluster`).

- `text_items_per_s`: a 1,000-item text job (each prompt holds its own
  `Sources:` block) from `POST /v1/jobs` until its state is `completed`.
- `chat_p99_ms_idle` / `chat_p99_ms_during_batch`: the same chat load
  (`POST /v1/chat`, `CHAT_CONCURRENCY` in flight, `CHAT_REQUESTS` chats) with
  no job, then while a 1,000-item job runs. Target: during <= 2 x idle.
- Restart: a `RESTART_ITEMS`-item job; the inference process (the worker) is
  SIGKILLed once half the items are done and started again. Items lost (never
  produced) and duplicated (a result written twice) are counted from the job
  state and the object store.
- Baseline (`bench/baseline/jobs_baseline.py`): the seed chapter's way, FastAPI
  `BackgroundTasks` in one process, through the same Triton. Its rate is
  measured on the same 1,000-item job over `BASELINE_RATE_WINDOW_S` (one
  sequential loop: the rate is steady), then the same restart experiment.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import nats

from bench.common import percentile, run_load
from deploy.cluster import ROOT, LocalSystem, free_port
from deploy.triton.local import LocalTriton
from proto.prompt import PromptSource, build_prompt
from proto.subjects import JOB_RESULTS_OBJECTS

__all__ = ["run"]

JOB_ITEMS = 1000
RESTART_ITEMS = 200
CHAT_REQUESTS = 80
CHAT_CONCURRENCY = 2
CHAT_WARMUP = 6
BASELINE_RATE_WINDOW_S = 30.0
POLL_S = 0.2  # progress polling interval of the benchmark client
REPORT_EVERY_S = 15.0  # progress printed while waiting
JOB_TIMEOUT_S = 420.0  # generous: the machine's 2 cores may be shared
SYSTEM_ENV = {"INFERENCE_JOBS_ACK_WAIT_S": "5"}  # a killed worker's items come back after 5 s
CHAT = {"prompt": "What does the Freedonia trade registry say about cheese exports?", "use_web": False}


def text_prompt(n: int) -> str:
    """A job item with its own one-line source: the generate model answers from it (a short answer)."""
    source = PromptSource(
        1, f"trade registry, entry {n}", f"Freedonia district {n} exports {n * 7} tonnes of cheese."
    )
    return build_prompt(f"How much cheese does Freedonia district {n} export?", [source])


def run() -> dict[str, Any]:
    """Run the whole benchmark and return its figures."""
    return asyncio.run(_run())


async def _run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        data_dir = Path(tmp)
        triton = LocalTriton.on_free_ports(data_dir / "triton")
        triton.start()
        try:
            await asyncio.to_thread(triton.wait_ready)
            async with LocalSystem.start(data_dir / "system", triton=triton, extra_env=SYSTEM_ENV) as system:
                ours = await _ours(system)
            baseline = await _baseline(triton.grpc_url, data_dir / "baseline")
        finally:
            triton.stop()
    results = {**ours, "baseline": baseline}
    _print(results)
    return results


async def _ours(system: LocalSystem) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=60) as client:
        await _chat_load(client, CHAT_WARMUP)
        idle = await _chat_load(client, CHAT_REQUESTS)
        started = time.perf_counter()
        job_id = await _submit(client, JOB_ITEMS)
        await _until(client, f"/v1/jobs/{job_id}", lambda s: s["state"] == "completed")
        items_per_s = JOB_ITEMS / (time.perf_counter() - started)
        busy_job = await _submit(client, JOB_ITEMS)
        await _until(client, f"/v1/jobs/{busy_job}", lambda s: s["done"] >= 8)  # the batch is flowing
        during = await _chat_load(client, CHAT_REQUESTS)
        still_running = (await client.get(f"/v1/jobs/{busy_job}")).json()["state"] == "running"
        await client.delete(f"/v1/jobs/{busy_job}")
        restart = await _our_restart(client, system)
    return {
        "text_items_per_s": round(items_per_s, 2),
        "job_items": JOB_ITEMS,
        "chat_p99_ms_idle": idle["p99_ms"],
        "chat_p50_ms_idle": idle["p50_ms"],
        "chat_p99_ms_during_batch": during["p99_ms"],
        "chat_p50_ms_during_batch": during["p50_ms"],
        "chat_errors": idle["errors"] + during["errors"],
        "batch_ran_through_chat_load": still_running,
        "chat_p99_target_met": during["p99_ms"] <= 2 * idle["p99_ms"],
        **restart,
    }


async def _chat_load(client: httpx.AsyncClient, requests: int) -> dict[str, float]:
    async def chat(_: int) -> None:
        response = await client.post("/v1/chat", json=CHAT)
        response.raise_for_status()

    load = await run_load(chat, concurrency=CHAT_CONCURRENCY, max_requests=requests, max_duration_s=120)
    return {
        "p50_ms": round(percentile(load.latencies_s, 50) * 1000, 1),
        "p99_ms": round(percentile(load.latencies_s, 99) * 1000, 1),
        "errors": len(load.errors),
    }


async def _submit(client: httpx.AsyncClient, items: int) -> str:
    response = await client.post(
        "/v1/jobs", json={"kind": "text", "items": [text_prompt(n) for n in range(items)]}
    )
    response.raise_for_status()
    job_id: str = response.json()["job_id"]
    return job_id


async def _until(client: httpx.AsyncClient, path: str, done: Any) -> dict[str, Any]:
    next_report = time.monotonic() + REPORT_EVERY_S
    async with asyncio.timeout(JOB_TIMEOUT_S):
        while True:
            try:
                response = await client.get(path)
            except httpx.TransportError:  # not listening yet (a restart)
                response = None
            if response is not None and response.status_code == 200 and done(body := response.json()):
                return dict(body)
            if response is not None and response.status_code == 200 and time.monotonic() >= next_report:
                next_report = time.monotonic() + REPORT_EVERY_S
                print(f"  {path}: {response.json()}"[:160], flush=True)
            await asyncio.sleep(POLL_S)  # the benchmark client's polling interval


async def _our_restart(client: httpx.AsyncClient, system: LocalSystem) -> dict[str, Any]:
    before = await _object_stream(system)
    job_id = await _submit(client, RESTART_ITEMS)
    await _until(client, f"/v1/jobs/{job_id}", lambda s: s["done"] >= RESTART_ITEMS // 2)
    worker = system.services["inference"]
    worker.stop(signal.SIGKILL)
    worker.start()
    await worker.wait_healthy(system.nats.url)
    final = await _until(client, f"/v1/jobs/{job_id}", lambda s: s["state"] in ("completed", "failed"))
    after = await _object_stream(system)
    # A second write of an item replaces its meta message and purges its chunk: two removed messages.
    removed = (after[0] - after[1]) - (before[0] - before[1])
    return {
        "restart_job_items": RESTART_ITEMS,
        "items_lost_on_restart": RESTART_ITEMS - final["done"],
        "items_duplicated": removed // 2,
        "restart_job_state": final["state"],
    }


async def _object_stream(system: LocalSystem) -> tuple[int, int]:
    """(last sequence, messages) of the results object store's stream."""
    client = await nats.connect(system.nats.url)
    try:
        state = (await client.jetstream().stream_info(f"OBJ_{JOB_RESULTS_OBJECTS}")).state
        return state.last_seq, state.messages
    finally:
        await client.close()


async def _baseline(triton_grpc: str, results_dir: Path) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "bench.baseline.jobs_baseline", "--port", str(port)]
    command += ["--triton", triton_grpc, "--results", str(results_dir)]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, cwd=ROOT, start_new_session=True)

    process = start()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await _until(client, "/health", lambda body: body["ok"])
            response = await client.post("/jobs", json={"items": [text_prompt(n) for n in range(JOB_ITEMS)]})
            job_id = response.json()["job_id"]
            started = time.perf_counter()
            await asyncio.sleep(BASELINE_RATE_WINDOW_S)  # the measuring window, not synchronisation
            done = (await client.get(f"/jobs/{job_id}")).json()["done"]
            items_per_s = done / (time.perf_counter() - started)
            process.kill()
            process.wait()
            process = start()
            await _until(client, "/health", lambda body: body["ok"])
            response = await client.post(
                "/jobs", json={"items": [text_prompt(n) for n in range(RESTART_ITEMS)]}
            )
            job_id = response.json()["job_id"]
            await _until(client, f"/jobs/{job_id}", lambda s: s["done"] >= RESTART_ITEMS // 2)
            process.kill()  # SIGKILL, halfway
            process.wait()
            process = start()
            await _until(client, "/health", lambda body: body["ok"])
            known = (await client.get(f"/jobs/{job_id}")).status_code == 200
            written = len(list((results_dir / job_id).glob("*.txt")))
    finally:
        process.kill()
        process.wait()
    return {
        "text_items_per_s": round(items_per_s, 2),
        "rate_window_s": BASELINE_RATE_WINDOW_S,
        "restart_job_items": RESTART_ITEMS,
        "items_lost_on_restart": RESTART_ITEMS - written,
        "items_duplicated": 0,  # nothing is ever run again: what was not written is lost
        "job_known_after_restart": known,
    }


def _print(results: dict[str, Any]) -> None:
    base = results["baseline"]
    rows = [
        ("text items/s (1,000-item job)", results["text_items_per_s"], base["text_items_per_s"]),
        ("items lost on SIGKILL + restart", results["items_lost_on_restart"], base["items_lost_on_restart"]),
        ("items duplicated", results["items_duplicated"], base["items_duplicated"]),
    ]
    print(f"{'':34} {'ours':>10} {'baseline':>10}")
    for name, ours, theirs in rows:
        print(f"{name:34} {ours:>10} {theirs:>10}")
    print(
        f"chat p99 ms: idle {results['chat_p99_ms_idle']}, during batch {results['chat_p99_ms_during_batch']}"
        f" (target <= 2x: {'met' if results['chat_p99_target_met'] else 'MISSED'})"
    )
