"""Compare-and-set on one key of a JetStream key-value bucket: how job states and rate-limit
windows change.

A change reads the key's value and revision, computes the new value with a
pure function of the current one, and writes it only over the revision it
read (`KeyValue.update(..., last=revision)`). When another writer (another
task, another replica) wrote first, the write is refused and the change
starts again from a fresh read, up to `attempts` times; so no writer ever
overwrites an update it has not seen. The function says "nothing to change"
by returning None, and then nothing is written.

What the record means, what "no such key" means to a caller and how running
out of attempts is reported to a user belong to the owning service: this
module says what happened (`None` for an absent key, `TooManyConflicts`,
`UnreadableValue`) and the service maps it.

rag's collection-model records (`services/rag/collection_models.py`) keep a
loop of their own: their decision awaits the store (does the collection hold
chunks?) and an unreadable record is overwritten rather than refused.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from proto.common import MessageDecodeError, decode
from runtime.logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable

    from nats.js.kv import KeyValue

__all__ = [
    "Changed",
    "Entry",
    "KeyValueError",
    "TooManyConflicts",
    "UnreadableValue",
    "change_value",
    "read_value",
    "upsert_value",
]

_log = get_logger(__name__)

ValueT = TypeVar("ValueT", bound=msgspec.Struct)


class KeyValueError(Exception):
    """Root of this module's errors; `detail` names the key."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnreadableValue(KeyValueError):
    """The key holds bytes that are not a value of the expected type (logged where found)."""


class TooManyConflicts(KeyValueError):
    """Every attempt at a change lost the race to another writer of the key."""


class Entry(NamedTuple, Generic[ValueT]):
    """A key's value and the revision it was read at."""

    value: ValueT
    revision: int


class Changed(NamedTuple, Generic[ValueT]):
    """The outcome of a change: the key's value now, and whether this change wrote it."""

    value: ValueT
    changed: bool


async def read_value(bucket: KeyValue, key: str, value_type: type[ValueT]) -> Entry[ValueT] | None:
    """The key's value and revision; None when the key is absent (never written, deleted or purged).

    `UnreadableValue` (after logging it) when the stored bytes do not decode as `value_type`.
    """
    try:
        entry = await bucket.get(key)
    except KeyNotFoundError:  # also KeyDeletedError, its subclass: no such key is a normal answer
        return None
    if entry.value is None or entry.revision is None:
        return None
    try:
        value: ValueT = decode(entry.value, value_type)
    except MessageDecodeError as exc:
        _log.error("unreadable key-value record", bucket=entry.bucket, key=key, detail=exc.detail)
        raise UnreadableValue(f"the value of {entry.bucket}/{key} is unreadable: {exc.detail}") from exc
    return Entry(value, entry.revision)


async def change_value(
    bucket: KeyValue,
    key: str,
    value_type: type[ValueT],
    change: Callable[[ValueT], ValueT | None],
    *,
    attempts: int,
) -> Changed[ValueT] | None:
    """Apply `change` to the key's value by compare-and-set, retried up to `attempts` times.

    None when the key is absent; `Changed(value, False)` when `change` returned None
    (nothing written); `TooManyConflicts` when every attempt lost the race;
    `UnreadableValue` as `read_value`.
    """
    found, new = await _compare_and_set(
        bucket, key, value_type, lambda current: None if current is None else change(current), attempts
    )
    if new is not None:
        return Changed(new, changed=True)
    return None if found is None else Changed(found.value, changed=False)


async def upsert_value(
    bucket: KeyValue,
    key: str,
    value_type: type[ValueT],
    change: Callable[[ValueT | None], ValueT],
    *,
    attempts: int,
) -> ValueT:
    """Write `change(current)` by compare-and-set, creating the key when absent (`current` None).

    The value written; `TooManyConflicts` and `UnreadableValue` as `change_value`. An
    exception `change` raises (a refusal) ends the change with nothing written.
    """
    _, new = await _compare_and_set(bucket, key, value_type, change, attempts)
    assert new is not None, "an upsert always writes"
    return new


async def _compare_and_set(
    bucket: KeyValue,
    key: str,
    value_type: type[ValueT],
    change: Callable[[ValueT | None], ValueT | None],
    attempts: int,
) -> tuple[Entry[ValueT] | None, ValueT | None]:
    """What was read last, and what was written over it (None: nothing to write)."""
    for _ in range(attempts):
        found = await read_value(bucket, key, value_type)
        new = change(None if found is None else found.value)
        if new is None:
            return found, None
        try:
            if found is None:  # absent, deleted or purged: create it, or lose to another creator
                await bucket.create(key, msgspec.json.encode(new))
            else:
                await bucket.update(key, msgspec.json.encode(new), last=found.revision)
        except KeyWrongLastSequenceError:
            # Another writer won: let this process's other tasks (often the other writers
            # of this very key) run once before reading again.
            await asyncio.sleep(0)
            continue
        return found, new
    raise TooManyConflicts(f"key {key!r}: {attempts} writes in a row lost the race")
