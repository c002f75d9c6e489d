"""The reconciliation lease on a real nats-server: one replica per period, the others skip."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from deploy.cluster import NatsServer
from proto.subjects import JOB_RECONCILE_LEASE_BUCKET
from services.inference.jobs.reconcile import ReconcileLease


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[list[Client]]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    connections = [await nats.connect(server.url) for _ in range(3)]
    yield connections
    for connection in connections:
        await connection.close()
    server.stop()


async def test_one_replica_of_three_takes_the_lease_of_a_period(replicas: list[Client]) -> None:
    leases = [
        await ReconcileLease.open(client.jetstream(), period_s=60, holder=f"replica-{n}")
        for n, client in enumerate(replicas)
    ]
    taken = await asyncio.gather(*(lease.acquire() for lease in leases))
    assert sorted(taken) == [False, False, True]
    assert not any(await asyncio.gather(*(lease.acquire() for lease in leases)))  # held: nobody again
    bucket = await replicas[0].jetstream().key_value(JOB_RECONCILE_LEASE_BUCKET)
    assert (await bucket.get("holder")).value == f"replica-{taken.index(True)}".encode()
    status = await bucket.status()
    assert status.ttl == pytest.approx(48.0)  # 0.8 periods: gone before the next turn


async def test_the_lease_is_free_again_once_its_key_is_gone(replicas: list[Client]) -> None:
    first = await ReconcileLease.open(replicas[0].jetstream(), period_s=60, holder="a")
    second = await ReconcileLease.open(replicas[1].jetstream(), period_s=60, holder="b")
    assert await first.acquire()
    assert not await second.acquire()
    bucket = await replicas[0].jetstream().key_value(JOB_RECONCILE_LEASE_BUCKET)
    await bucket.delete("holder")  # what the bucket's TTL does at the end of the period
    assert await second.acquire()
