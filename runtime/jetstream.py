"""Get-or-create of JetStream streams and buckets (nats-py: FastStream has no API for these).

Several services and replicas declare the same stream or bucket as they
start; whoever comes first creates it, the others find it, and a race
between two creators is settled by reading what the winner made.
"""

from __future__ import annotations

from nats.errors import TimeoutError as FetchTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    StreamConfig,
)
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

__all__ = ["current_values", "ensure_stream", "open_key_value", "open_object_store"]


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream if it does not exist; leave an existing one as it is."""
    assert config.name is not None, "a stream config names its stream"
    try:
        await js.stream_info(config.name)
        return
    except NotFoundError:
        pass
    try:
        await js.add_stream(config)
    except BadRequestError:  # another replica or service created it first
        await js.stream_info(config.name)


async def open_key_value(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    """The bucket if it exists (whoever created it), else created with `config`."""
    try:
        return await js.key_value(config.bucket)
    except BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(config=config)
    except BadRequestError:  # another replica or service created it first
        return await js.key_value(config.bucket)


async def open_object_store(
    js: JetStreamContext, bucket: str, config: ObjectStoreConfig | None = None
) -> ObjectStore:
    """The object store if it exists, else created with `config` (or the server's defaults)."""
    try:
        return await js.object_store(bucket)
    except BucketNotFoundError:
        pass
    try:
        return await js.create_object_store(bucket, config=config)
    except BadRequestError:
        return await js.object_store(bucket)


_KV_DELETED = frozenset({"DEL", "PURGE"})  # KV-Operation of a deleted key's marker
_FETCH_BATCH = 256


async def current_values(
    js: JetStreamContext, bucket: str, keys: str = ">", *, timeout_s: float = 5.0
) -> list[tuple[str, bytes]]:
    """Every live key of a key-value bucket under the filter `keys` and its value, in one pass.

    nats-py's `KeyValue.watch()` (and `keys()`, built on it) can signal the end
    of the current values before all of them were delivered, which gives a
    partial list (nats-io/nats.py#842). Here an ephemeral pull consumer takes
    the last message per key, its pending count at creation is the exact number
    to read, and fetching that many ends the pass: no end marker to race.
    """
    prefix = f"$KV.{bucket}."
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        ack_policy=AckPolicy.EXPLICIT,  # nothing is acked: the consumer is gone after this pass
        inactive_threshold=60.0,
    )
    subscription = await js.pull_subscribe(prefix + keys, stream=f"KV_{bucket}", config=config)
    found: list[tuple[str, bytes]] = []
    try:
        remaining = (await subscription.consumer_info()).num_pending or 0
        while remaining > 0:
            try:
                messages = await subscription.fetch(min(remaining, _FETCH_BATCH), timeout=timeout_s)
            except FetchTimeoutError:  # a key removed since the count: nothing more to read
                break
            remaining -= len(messages)
            for message in messages:
                headers = message.headers or {}
                if headers.get("KV-Operation") in _KV_DELETED or "Nats-Marker-Reason" in headers:
                    continue
                found.append((message.subject.removeprefix(prefix), message.data))
    finally:
        await subscription.unsubscribe()
    return found
