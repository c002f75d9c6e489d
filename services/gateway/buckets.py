"""Get-or-create of the JetStream buckets the gateway uses (several replicas may race)."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BadRequestError, BucketNotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

__all__ = ["open_key_value", "open_object_store"]


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


async def open_object_store(js: JetStreamContext, bucket: str) -> ObjectStore:
    """The object store if it exists, else created with the server's defaults."""
    try:
        return await js.object_store(bucket)
    except BucketNotFoundError:
        pass
    try:
        return await js.create_object_store(bucket)
    except BadRequestError:
        return await js.object_store(bucket)
