"""`just up` (what `./dev up` runs) starts the whole system; Ctrl-C stops all of it within 20 s."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from deploy.cluster import ROOT, VENV_BIN, free_port, wait_gateway_ready

pytestmark = pytest.mark.integration


def _group_alive(pgid: int) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pgid=,pid=,args="], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line.split()[0] == str(pgid)]


async def test_up_serves_then_ctrl_c_stops_everything(tmp_path: Path) -> None:
    ports = {
        name: str(free_port())
        for name in (
            "GATEWAY_PORT",
            "NATS_PORT",
            "NATS_MONITOR_PORT",
            "TRITON_GRPC_PORT",
            "TRITON_HTTP_PORT",
            "TRITON_METRICS_PORT",
        )
    }
    env = {**os.environ, **ports, "STATE_DIR": str(tmp_path / "state")}
    for key in [k for k in env if k.endswith(("_NATS_URL", "_TRITON_GRPC_URL")) or k == "RAG_DATA_DIR"]:
        del env[key]  # let the justfile derive them from the ports above
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen(  # noqa: ASYNC220 (spawning does not wait; the test waits on readiness)
        [str(VENV_BIN / "just"), "up"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        await wait_gateway_ready(f"http://127.0.0.1:{ports['GATEWAY_PORT']}", timeout_s=180)
        assert f"http://127.0.0.1:{ports['GATEWAY_PORT']}" in (tmp_path / "up.log").read_text()
        started = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        await asyncio.to_thread(process.wait, 20)
        assert time.monotonic() - started < 20
        leftovers = _group_alive(process.pid)
        assert leftovers == [], leftovers
    finally:
        if process.poll() is None or _group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
