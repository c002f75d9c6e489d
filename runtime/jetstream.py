"""Get-or-create of JetStream streams and buckets (nats-py: FastStream has no API for these).

Several services and replicas declare the same stream or bucket as they
start; whoever comes first creates it, the others find it, and a race
between two creators is settled by reading what the winner made.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, ObjectStoreConfig, StreamConfig
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

__all__ = ["ensure_stream", "open_key_value", "open_object_store"]


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
