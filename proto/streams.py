"""JetStream streams of the contract, declared identically by every service that uses them.

Declaring is idempotent (`ensure_stream` in `runtime.jetstream`): the first
service to start creates a stream, the others find it.
"""

from __future__ import annotations

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from proto import subjects

__all__ = ["INGEST_STREAM_CONFIG"]

# Uploads waiting to be ingested: a work queue (a message leaves once acked),
# on disk, with a two-minute window in which a repeated Nats-Msg-Id is dropped.
INGEST_STREAM_CONFIG = StreamConfig(
    name=subjects.INGEST_STREAM,
    subjects=[subjects.INGEST],
    retention=RetentionPolicy.WORK_QUEUE,
    storage=StorageType.FILE,
    discard=DiscardPolicy.OLD,
    duplicate_window=120.0,
)
