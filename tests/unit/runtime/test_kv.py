"""`change_value` and `read_value` on a real nats-server: concurrent changes lose nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import nats
import pytest
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue
from structlog.testing import capture_logs

from deploy.cluster import NatsServer
from runtime.kv import Changed, TooManyConflicts, UnreadableValue, change_value, read_value, upsert_value


class Tally(msgspec.Struct, frozen=True):
    seen: tuple[int, ...] = ()


@pytest.fixture
async def buckets(tmp_path: Path) -> AsyncIterator[list[KeyValue]]:
    """One bucket, opened on two connections (two replicas)."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    clients = [await nats.connect(server.url) for _ in range(2)]
    try:
        first = await clients[0].jetstream().create_key_value(config=KeyValueConfig(bucket="tallies"))
        yield [first, await clients[1].jetstream().key_value("tallies")]
    finally:
        for client in clients:
            await client.close()
        server.stop()


async def test_concurrent_changes_from_two_connections_lose_none(buckets: list[KeyValue]) -> None:
    await buckets[0].create("t", msgspec.json.encode(Tally()))

    async def add(n: int) -> Changed[Tally] | None:
        def change(tally: Tally) -> Tally | None:
            return None if n in tally.seen else Tally(seen=(*tally.seen, n))

        return await change_value(buckets[n % 2], "t", Tally, change, attempts=200)

    outcomes = await asyncio.gather(*(add(n) for n in range(40)))
    assert all(outcome is not None and outcome.changed for outcome in outcomes)
    found = await read_value(buckets[1], "t", Tally)
    assert found is not None
    assert sorted(found.value.seen) == list(range(40))
    assert found.revision == 41  # the create, then one write per change


async def test_a_change_that_returns_none_writes_nothing(buckets: list[KeyValue]) -> None:
    revision = await buckets[0].create("t", msgspec.json.encode(Tally(seen=(1,))))
    outcome = await change_value(buckets[0], "t", Tally, lambda tally: None, attempts=3)
    assert outcome == Changed(Tally(seen=(1,)), changed=False)
    assert (await buckets[0].get("t")).revision == revision


async def test_an_absent_or_deleted_key_is_none(buckets: list[KeyValue]) -> None:
    assert await read_value(buckets[0], "never", Tally) is None
    assert await change_value(buckets[0], "never", Tally, lambda tally: tally, attempts=3) is None
    await buckets[0].put("gone", msgspec.json.encode(Tally()))
    await buckets[0].delete("gone")
    assert await read_value(buckets[0], "gone", Tally) is None
    assert await change_value(buckets[0], "gone", Tally, lambda tally: tally, attempts=3) is None


async def test_running_out_of_attempts_raises_and_the_winners_are_kept(buckets: list[KeyValue]) -> None:
    await buckets[0].create("t", msgspec.json.encode(Tally()))

    async def add_once(n: int) -> bool:
        try:
            await change_value(
                buckets[n % 2], "t", Tally, lambda tally: Tally(seen=(*tally.seen, n)), attempts=1
            )
        except TooManyConflicts as exc:
            assert "'t'" in exc.detail and "1 writes" in exc.detail
            return False
        return True

    # Every task sends its read before any reply can come back (the loop has not turned),
    # so most of them write over a revision that is gone, with no attempt left; the
    # winners' writes are all kept.
    won = await asyncio.gather(*(add_once(n) for n in range(10)))
    assert won.count(True) >= 1 and won.count(False) >= 1
    found = await read_value(buckets[0], "t", Tally)
    assert found is not None
    assert sorted(found.value.seen) == [n for n, kept in enumerate(won) if kept]


async def test_an_unreadable_value_is_logged_and_raised(buckets: list[KeyValue]) -> None:
    await buckets[0].put("t", b"not json")
    with capture_logs() as logs, pytest.raises(UnreadableValue) as raised:
        await change_value(buckets[0], "t", Tally, lambda tally: tally, attempts=3)
    assert "tallies/t" in raised.value.detail
    assert [(log["event"], log["key"]) for log in logs] == [("unreadable key-value record", "t")]
    assert (await buckets[0].get("t")).value == b"not json"  # nothing written over it


async def test_concurrent_upserts_of_an_absent_key_create_it_once_and_lose_none(
    buckets: list[KeyValue],
) -> None:
    async def add(n: int) -> Tally:
        def change(tally: Tally | None) -> Tally:
            return Tally(seen=(*(tally.seen if tally else ()), n))

        return await upsert_value(buckets[n % 2], "new", Tally, change, attempts=200)

    await asyncio.gather(*(add(n) for n in range(30)))
    found = await read_value(buckets[0], "new", Tally)
    assert found is not None
    assert sorted(found.value.seen) == list(range(30))
    assert found.revision == 30  # one create among the racers, then one write per upsert


async def test_an_upsert_recreates_a_deleted_key_and_a_refusal_writes_nothing(
    buckets: list[KeyValue],
) -> None:
    await buckets[0].create("gone", msgspec.json.encode(Tally(seen=(1,))))
    await buckets[0].delete("gone")
    assert await upsert_value(buckets[0], "gone", Tally, lambda t: Tally(seen=(2,)), attempts=3) == Tally(
        seen=(2,)
    )

    def refuse(tally: Tally | None) -> Tally:
        raise LookupError("full")

    with pytest.raises(LookupError):
        await upsert_value(buckets[0], "gone", Tally, refuse, attempts=3)
    found = await read_value(buckets[0], "gone", Tally)
    assert found is not None and found.value == Tally(seen=(2,))
