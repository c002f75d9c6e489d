"""A whole local system for tests and benchmarks: nats-server, Triton, the services.

Readiness is always probed (a port that accepts, a health subject that
answers), never assumed after a sleep. `LocalSystem` starts everything on
free loopback ports; tests wrap it in fixtures, benchmarks use it directly.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats

from deploy.triton.local import LocalTriton, free_ports
from proto.common import decode, encode
from proto.health import HealthReply, HealthRequest
from proto.subjects import health_subject

__all__ = [
    "LocalSystem",
    "NatsServer",
    "ServiceProcess",
    "free_port",
    "service_env",
    "wait_for_port",
    "wait_gateway_ready",
]

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    return free_ports(1)[0]


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until 127.0.0.1:`port` accepts connections (or fail)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)  # polling interval of a readiness probe
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


class NatsServer:
    """A real `nats-server` with JetStream on a free loopback port."""

    def __init__(self, store_dir: Path) -> None:
        store_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.store_dir = store_dir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start (or restart, keeping its JetStream data) and wait until it accepts clients."""
        binary = shutil.which("nats-server", path=str(VENV_BIN)) or "nats-server"
        command = [binary, "--jetstream", "--addr", "127.0.0.1", "--port", str(self.port)]
        command += ["--store_dir", str(self.store_dir)]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, 10.0, self._process)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


class ServiceProcess:
    """`python -m services.<name>` as a child process with its own environment."""

    def __init__(self, name: str, env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (readiness is awaited separately)."""
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The running child process."""
        assert self._process is not None, f"{self.name} is not started"
        return self._process

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 20.0) -> int:
        """Signal it and wait; SIGKILL after `timeout_s`. Returns the exit code."""
        if self._process is None:
            return 0
        process, self._process = self._process, None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return process.returncode

    def log(self) -> str:
        """What the service wrote so far (for assertion messages)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_healthy(self, nats_url: str, timeout_s: float = 60.0, *, ready: bool = True) -> None:
        """Wait until the service answers on its health subject (and, if `ready`, says ready)."""
        client = await nats.connect(nats_url)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            while loop.time() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.log()[-3000:]}")
                try:
                    message = await client.request(
                        health_subject(self.name), encode(HealthRequest()), timeout=0.5
                    )
                    reply: HealthReply = decode(message.data, HealthReply)
                    if reply.ready or not ready:
                        return
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    pass
                await asyncio.sleep(0.05)  # polling interval of a readiness probe
            raise TimeoutError(f"{self.name} not healthy after {timeout_s} s:\n{self.log()[-3000:]}")
        finally:
            await client.close()


def service_env(nats_url: str, triton_grpc: str, data_dir: Path, gateway_port: int) -> dict[str, str]:
    """The environment of every service of a local system."""
    return {
        "GATEWAY_NATS_URL": nats_url,
        "SCRAPER_NATS_URL": nats_url,
        "RAG_NATS_URL": nats_url,
        "INFERENCE_NATS_URL": nats_url,
        "INFERENCE_TRITON_GRPC_URL": triton_grpc,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(gateway_port),
        "RAG_DATA_DIR": str(data_dir / "rag"),
        # Local pages are served from loopback: allow it explicitly (the guard stays on).
        "SCRAPER_ALLOW_HOSTS": "127.0.0.1,localhost",
        "SCRAPER_RESPECT_ROBOTS": "false",
        "TORCHINDUCTOR_CACHE_DIR": str(data_dir / "torchinductor"),
    }


async def wait_gateway_ready(url: str, timeout_s: float = 60.0) -> None:
    """Poll the gateway's /readyz until it answers 200."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        while loop.time() < deadline:
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)  # polling interval of a readiness probe
    raise TimeoutError(f"the gateway at {url} never became ready")


@dataclass
class LocalSystem:
    """NATS, Triton and the four services on loopback (see `start_system`)."""

    nats: NatsServer
    triton: LocalTriton
    gateway_url: str
    data_dir: Path
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def pids(self) -> dict[str, int]:
        """Process ids of every running part, by name (services, "triton", "nats")."""
        pids = {name: service.process.pid for name, service in self.services.items()}
        pids.update(triton=self.triton.pid or 0, nats=self.nats.pid or 0)
        return {name: pid for name, pid in pids.items() if pid}

    async def restart(self, name: str) -> None:
        """Stop a service (SIGTERM) and start it again, healthy."""
        service = self.services[name]
        service.stop()
        service.start()
        await service.wait_healthy(self.nats.url)

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        data_dir: Path,
        *,
        nats: NatsServer | None = None,
        triton: LocalTriton | None = None,
        extra_env: Mapping[str, str] | None = None,
        services: tuple[str, ...] = ("inference", "scraper", "rag", "gateway"),
    ) -> AsyncIterator[LocalSystem]:
        """Start what is not given, wait until the gateway is ready, stop it all at the end."""
        owned_nats = nats is None
        owned_triton = triton is None
        nats = nats or NatsServer(data_dir / "nats")
        if owned_nats:
            nats.start()
        if triton is None:
            triton = LocalTriton.on_free_ports(data_dir / "triton")
            triton.start()
            await asyncio.to_thread(triton.wait_ready)
        gateway_port = free_port()
        env = service_env(nats.url, f"127.0.0.1:{triton.options.grpc_port}", data_dir, gateway_port)
        env.update(extra_env or {})
        system = cls(nats, triton, f"http://127.0.0.1:{gateway_port}", data_dir, env=env)
        try:
            for name in services:
                system.services[name] = ServiceProcess(name, env, data_dir)
                system.services[name].start()
            for service in system.services.values():
                await service.wait_healthy(nats.url)
            if "gateway" in services:
                await wait_gateway_ready(system.gateway_url)
            yield system
        finally:
            for service in system.services.values():
                service.stop()
            if owned_triton:
                triton.stop()
            if owned_nats:
                nats.stop()
