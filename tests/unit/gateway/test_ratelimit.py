"""The compare-and-set rate limiter against a real nats-server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from deploy.cluster import NatsServer
from runtime.jetstream import open_key_value
from services.gateway.errors import RateLimited
from services.gateway.ratelimit import WINDOW_S, RateLimiter, client_key


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def bucket(nats_server: NatsServer) -> AsyncIterator[KeyValue]:
    client = await nats.connect(nats_server.url)
    js = client.jetstream()
    yield await open_key_value(js, KeyValueConfig(bucket=f"rl-{uuid.uuid4().hex[:8]}", ttl=120))
    await client.close()


async def test_concurrent_limiters_admit_exactly_the_limit(bucket: KeyValue) -> None:
    clock = Clock()
    limiters = [RateLimiter(bucket, 7, max_attempts=200, clock=clock) for _ in range(3)]

    async def one(n: int) -> bool:
        try:
            await limiters[n % 3].admit("key-1")
        except RateLimited:
            return False
        return True

    admitted = await asyncio.gather(*(one(n) for n in range(25)))
    assert sum(admitted) == 7


async def test_window_resets_after_a_minute(bucket: KeyValue) -> None:
    clock = Clock()
    limiter = RateLimiter(bucket, 2, max_attempts=10, clock=clock)
    assert await limiter.admit("k") == 1
    assert await limiter.admit("k") == 0
    clock.now += 20
    with pytest.raises(RateLimited) as refused:
        await limiter.admit("k")
    assert refused.value.retry_after_s == 40
    assert await limiter.admit("other") == 1  # keys are independent
    clock.now += WINDOW_S - 20
    assert await limiter.admit("k") == 1


def test_client_keys_are_valid_kv_keys() -> None:
    assert client_key("ip-::1") == "c.ip-__1"
    assert client_key("abc123") == "c.abc123"
    assert client_key("") == "c._"
