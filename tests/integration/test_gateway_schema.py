"""Schemathesis against the running gateway's OpenAPI schema: no request gets a 5xx."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from deploy.cluster import LocalSystem, ServiceProcess, free_port, wait_gateway_ready

pytestmark = pytest.mark.integration

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
RUN_TIMEOUT_S = 90.0


async def test_no_generated_request_gets_a_server_error(system: LocalSystem, tmp_path: Path) -> None:
    # A gateway with an API key of its own: what the run uploads lands in that key's
    # collections, never in the `default` collection other tests read.
    port = free_port()
    env = {**system.env, "GATEWAY_PORT": str(port), "GATEWAY_API_KEYS": "schemathesis-key"}
    gateway = ServiceProcess("gateway", env, tmp_path / "gateway")
    gateway.start()
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_gateway_ready(url)
        await _run_schemathesis(url, tmp_path)
    finally:
        gateway.stop()


async def _run_schemathesis(url: str, tmp_path: Path) -> None:
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{url}/schema/openapi.json",
        "--header",
        "Authorization: Bearer schemathesis-key",
        "--checks",
        "not_a_server_error",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "8",
        "--seed",
        "7",
        "--workers",
        "1",  # hypothesis' lambda-source cache is not thread-safe ("AST constructor recursion")
        "--request-timeout",
        "30",
        "--no-shrink",
        "--suppress-health-check",
        "all",
        "--report-dir",
        str(tmp_path),
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_S)
    text = output.decode(errors="replace")
    failures = text[text.find("FAILURES") :] if "FAILURES" in text else text
    assert process.returncode == 0, failures[:8000]
    generated = re.search(r"(\d+) generated", text)
    assert generated is not None and int(generated.group(1)) >= 100, text[-2000:]
