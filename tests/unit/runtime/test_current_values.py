"""`current_values` on a real nats-server: every live key, exactly, on every read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig

from deploy.cluster import NatsServer
from runtime.jetstream import current_values


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JetStreamContext]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    client = await nats.connect(server.url)
    try:
        yield client.jetstream()
    finally:
        await client.close()
        server.stop()


async def test_every_live_key_under_the_filter_and_its_last_value(js: JetStreamContext) -> None:
    kv = await js.create_key_value(config=KeyValueConfig(bucket="things", history=3))
    for n in range(300):  # more than one fetch batch
        await kv.put(f"a.{n}", b"first")
        await kv.put(f"a.{n}", f"value {n}".encode())
    await kv.put("b.0", b"another scope")
    await kv.put("bare", b"one token")
    await kv.delete("a.1")
    await kv.purge("a.2")
    expected = {(f"a.{n}", f"value {n}".encode()) for n in range(300) if n not in (1, 2)}
    for _ in range(20):  # the same answer every time (watch() may end early: nats.py#842)
        assert set(await current_values(js, "things", "a.*")) == expected
    assert await current_values(js, "things", "*") == [("bare", b"one token")]
    assert len(await current_values(js, "things")) == 298 + 2
    assert await current_values(js, "things", "c.*") == []
