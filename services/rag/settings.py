"""Settings of the rag service: store location, limits and chunking, with laptop defaults.

The runtime loads them from environment variables named ``RAG_<FIELD_UPPERCASE>``.
"""

from __future__ import annotations

import msgspec

__all__ = ["RagSettings"]


class RagSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Configuration of parsing, chunking, the passage store and retrieval."""

    data_dir: str = ".state/rag"  # LanceDB folder of the embedded store (used when weaviate_url is empty)
    store_timeout_s: float = 10.0  # longest one LanceDB query may run
    optimize_after_rows: int = 1000  # LanceDB: unindexed rows that trigger compaction + FTS index refresh
    settle_after_s: float = 2.0  # LanceDB: quiet time after a collection's last write before that refresh
    vector_index_min_rows: int = 5000  # LanceDB: chunks in a collection before its HNSW vector index is built
    vector_index_ef: int = 64  # LanceDB: HNSW candidates examined per vector query (recall vs speed)
    weaviate_url: str = ""  # e.g. http://weaviate:8080; set it to use Weaviate instead of LanceDB
    weaviate_grpc_port: int = 50051  # Weaviate's gRPC port on the same host as weaviate_url
    weaviate_api_key: str = ""  # API key sent to Weaviate; empty means anonymous access
    weaviate_collection: str = "RagChunk"  # Weaviate collection holding chunks, one tenant per rag collection
    weaviate_timeout_s: float = 10.0  # per-request timeout of Weaviate queries and writes
    weaviate_alpha: float = 0.5  # hybrid weight in Weaviate: 0 = BM25 only, 1 = vector only
    max_file_bytes: int = 20_000_000  # uploads larger than this are refused before parsing
    max_pdf_pages: int = 500  # PDFs with more pages are refused
    chunk_max_tokens: int = 200  # word pieces per chunk (all-MiniLM-L6-v2 reads at most 256)
    chunk_overlap_tokens: int = 40  # word pieces repeated between consecutive chunks of a section
    parse_workers: int = 1  # processes parsing documents (CPU-bound)
    retrieve_k_max: int = 50  # most passages one retrieve request may ask for
    max_query_chars: int = 8_000  # longer queries are refused (bad_request): inference embeds at most this
    retrieve_concurrency: int = 16  # retrieve requests one replica works on at the same time
    candidate_factor: int = 4  # hybrid fetches k * this from each of BM25 and vector before fusion
    collection_model_cache_s: float = 10.0  # searches reuse a collection's model record this long
    # Durable ingestion (a JetStream pull consumer shared by every replica).
    ingest_max_deliver: int = 5  # deliveries of one ingest message before it is dead-lettered
    ingest_ack_wait_s: float = 60.0  # JetStream redelivers a message not acked (or touched) within this
    ingest_retry_backoff_s: float = 2.0  # first redelivery delay after a transient error, doubled per try
    ingest_retry_backoff_max_s: float = 60.0  # longest redelivery delay
    ingest_concurrency: int = 2  # documents one replica ingests at once (2 keeps both embed instances busy)
    parse_timeout_s: float = 120.0  # longest parse + chunk of one document in the process pool
    object_timeout_s: float = 30.0  # longest read or delete of an upload in the object store
    embed_batch_size: int = 32  # texts per inference.embed request
    embed_timeout_s: float = 30.0  # deadline of one inference.embed request
    embed_max_concurrent_batches: int = 2  # embed requests one replica has in flight
    nats_url: str = "nats://127.0.0.1:4222"  # the bus
