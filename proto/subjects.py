"""Every NATS subject, stream, bucket and queue group name, defined once.

A subject is a public API: other systems join the bus by publishing and
subscribing to these names, so renaming one is a breaking change.
"""

from __future__ import annotations

__all__ = [
    "CHAT",
    "COLLECTION_VECTORS_BUCKET",
    "DOCUMENTS_BUCKET",
    "DOCUMENTS_OBJECTS",
    "EMBED",
    "GENERATE",
    "GENERATE_CANCEL",
    "IMAGE",
    "INFERENCE_STATS",
    "INGEST",
    "INGEST_DEAD_LETTER",
    "INGEST_DEAD_STREAM",
    "INGEST_STREAM",
    "RETRIEVE",
    "SCRAPE",
    "SCRAPE_CACHE_BUCKET",
    "SCRAPER_STATS",
    "SEARCH",
    "SERVICES",
    "DOCUMENT_DELETE",
    "health_subject",
    "stream_subject",
]

# Request-reply subjects (core NATS, one queue group per service).
SCRAPE = "scrape"  # ScrapeRequest -> ScrapeReply | ErrorReply
RETRIEVE = "retrieve"  # RetrieveRequest -> RetrieveReply | ErrorReply
SEARCH = RETRIEVE  # the document search API uses the same retrieval subject
GENERATE = "inference.generate"  # GenerateRequest -> GenerateAccepted | ErrorReply, then a stream
GENERATE_CANCEL = "inference.cancel"  # CancelGenerate, fan-out to every inference replica
EMBED = "inference.embed"  # EmbedRequest -> EmbedReply | ErrorReply
IMAGE = "inference.image"  # ImageRequest -> ImageReply | ErrorReply
CHAT = "chat.request"  # ChatRequest -> ChatAnswer | ErrorReply (the gateway's chat, on the bus)
DOCUMENT_DELETE = "rag.document.delete"  # DeleteDocument -> DocumentDeleted | ErrorReply
INFERENCE_STATS = "inference.stats"  # StatsRequest -> InferenceStats (in flight, queued)
SCRAPER_STATS = "scraper.stats"  # StatsRequest -> LoopLagStats (the event-loop lag a replica measured)

# Per-request token streams: inference publishes TokenChunk..., then GenerateResult or ErrorReply.
_STREAM_PREFIX = "inference.stream."

# Health: each service answers HealthRequest on health.<service>.
_HEALTH_PREFIX = "health."
SERVICES = ("scraper", "rag", "inference")  # what the gateway's /readyz asks

# JetStream: durable ingestion of uploaded documents.
INGEST_STREAM = "RAG_INGEST"
INGEST = "rag.ingest"  # IngestDocument, durable
INGEST_DEAD_LETTER = "rag.ingest.dead"  # IngestDocument that failed max_deliver times
INGEST_DEAD_STREAM = "RAG_INGEST_DEAD"  # keeps the dead letters
DOCUMENTS_OBJECTS = "documents"  # object store bucket: raw uploads
DOCUMENTS_BUCKET = "document-state"  # key-value bucket: DocumentStatus by document id
COLLECTION_VECTORS_BUCKET = "collection-vectors"  # key-value bucket: CollectionVectors by collection

SCRAPE_CACHE_BUCKET = "scrape-cache"  # key-value bucket: ScrapedPage by normalised URL


def stream_subject(request_id: str) -> str:
    """The subject a generation's chunks are published on."""
    return f"{_STREAM_PREFIX}{request_id}"


def health_subject(service: str) -> str:
    """The subject on which `service` answers health requests."""
    return f"{_HEALTH_PREFIX}{service}"


# -- Batch jobs (proto/jobs.py) ------------------------------------------------
# Items are durable work in the JOBS_STREAM work-queue stream, one subject per
# job (so a cancelled job's remaining items are purged by subject), worked by
# inference replicas through one shared durable pull consumer. State lives in
# a key-value bucket, results in an object store; progress events are core
# NATS; dead letters are kept in a small stream of their own.
JOBS_STREAM = "JOBS"
JOB_ITEMS_ALL = "jobs.item.*"  # JobItem, durable; the stream's subjects
JOBS_CONSUMER = "inference-jobs"  # the durable pull consumer every inference replica shares
JOBS_DEAD_STREAM = "JOBS_DEAD"
JOB_DEAD_LETTER = "jobs.dead"  # JobItemDead: failed max_deliver times, or unreadable
JOB_STATE_BUCKET = "job-state"  # key-value bucket: JobStatus by job id
JOB_RESULTS_OBJECTS = "job-results"  # object store bucket: item results by result_object_name
JOB_RECONCILE_LEASE_BUCKET = "job-reconcile-lease"  # key-value: which replica reconciles this period
_JOB_ITEMS_PREFIX = "jobs.item."
_JOB_EVENTS_PREFIX = "jobs.events."


def job_items_subject(job_id: str) -> str:
    """The subject a job's items are published on."""
    return f"{_JOB_ITEMS_PREFIX}{job_id}"


def job_events_subject(job_id: str) -> str:
    """The subject a job's JobProgress events are published on."""
    return f"{_JOB_EVENTS_PREFIX}{job_id}"


__all__ += [
    "JOBS_CONSUMER",
    "JOBS_DEAD_STREAM",
    "JOBS_STREAM",
    "JOB_DEAD_LETTER",
    "JOB_ITEMS_ALL",
    "JOB_RECONCILE_LEASE_BUCKET",
    "JOB_RESULTS_OBJECTS",
    "JOB_STATE_BUCKET",
    "job_events_subject",
    "job_items_subject",
]
