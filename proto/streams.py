"""JetStream streams of the contract, declared identically by every service that uses them.

Declaring is idempotent (`ensure_stream` in `runtime.jetstream`): the first
service to start creates a stream, the others find it.
"""

from __future__ import annotations

from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from proto import subjects

__all__ = ["INGEST_DEAD_STREAM_CONFIG", "INGEST_STREAM_CONFIG"]

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

# Documents that could not be ingested, kept a week for inspection and replay.
INGEST_DEAD_STREAM_CONFIG = StreamConfig(
    name=subjects.INGEST_DEAD_STREAM,
    subjects=[subjects.INGEST_DEAD_LETTER],
    retention=RetentionPolicy.LIMITS,
    storage=StorageType.FILE,
    max_age=7 * 24 * 3600.0,
)


# -- Batch jobs (proto/jobs.py) ------------------------------------------------
__all__ += [
    "JOBS_DEAD_STREAM_CONFIG",
    "JOBS_STREAM_CONFIG",
    "JOB_RESULTS_CONFIG",
    "JOB_RETENTION_S",
    "JOB_STATE_CONFIG",
]

JOB_RETENTION_S = 7 * 24 * 3600.0  # job state, results and dead letters are kept a week

# Job items waiting for a replica: a work queue (an item leaves once acked).
# A full stream refuses new items (the submitter sees it) rather than drop
# queued ones; a repeated Nats-Msg-Id within ten minutes is dropped.
JOBS_STREAM_CONFIG = StreamConfig(
    name=subjects.JOBS_STREAM,
    subjects=[subjects.JOB_ITEMS_ALL],
    retention=RetentionPolicy.WORK_QUEUE,
    storage=StorageType.FILE,
    discard=DiscardPolicy.NEW,
    duplicate_window=600.0,
)

# Items that failed for good, kept for people to look at (nothing consumes them).
JOBS_DEAD_STREAM_CONFIG = StreamConfig(
    name=subjects.JOBS_DEAD_STREAM,
    subjects=[subjects.JOB_DEAD_LETTER],
    retention=RetentionPolicy.LIMITS,
    storage=StorageType.FILE,
    discard=DiscardPolicy.OLD,
    max_age=JOB_RETENTION_S,
)

# JobStatus by job id: one revision per key is enough for compare-and-set.
JOB_STATE_CONFIG = KeyValueConfig(
    bucket=subjects.JOB_STATE_BUCKET,
    history=1,
    ttl=JOB_RETENTION_S,
    storage=StorageType.FILE,
)

# Item results (text or PNG) by `result_object_name(job_id, item)`.
JOB_RESULTS_CONFIG = ObjectStoreConfig(
    bucket=subjects.JOB_RESULTS_OBJECTS,
    ttl=JOB_RETENTION_S,
    storage=StorageType.FILE,
)
