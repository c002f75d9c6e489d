"""Idempotent declaration of JetStream streams (nats-py: FastStream has no API for this)."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

__all__ = ["ensure_stream"]


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream if it does not exist; leave an existing one as it is."""
    assert config.name is not None, "a stream config names its stream"
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)
