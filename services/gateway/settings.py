"""Gateway settings, read from `GATEWAY_*` environment variables."""

from __future__ import annotations

import msgspec

__all__ = ["GatewaySettings"]


class GatewaySettings(msgspec.Struct, frozen=True, kw_only=True):
    """Every limit and timeout of the gateway, with defaults that work on a laptop."""

    host: str = "127.0.0.1"  # bind address; anything but loopback requires API keys
    port: int = 8000  # HTTP port
    nats_url: str = "nats://127.0.0.1:4222"  # comma-separated for a cluster
    api_keys: tuple[str, ...] = ()  # accepted API keys (stored hashed in memory)
    api_keys_file: str = ""  # a file with one API key per line, added to api_keys
    context_timeout_s: float = 3.0  # one deadline for all enrichers (scraper, rag) together
    accept_timeout_s: float = 2.0  # how long inference may take to accept a generation
    chat_timeout_s: float = 60.0  # the whole chat, enrichment and generation included
    stream_idle_timeout_s: float = 10.0  # the longest wait for an answer's next chunk after its first
    health_timeout_s: float = 1.0  # each service's answer to a readiness probe
    max_prompt_chars: int = 20_000  # longer prompts are refused with 413
    max_source_chars: int = 4_000  # text of one page or passage put into the prompt
    max_history_chars: int = 8_000  # earlier turns put into the prompt (instructions, then the latest)
    # The model's prompt limit (INFERENCE_MAX_PROMPT_CHARS): sources that do not fit are left out.
    max_model_prompt_chars: int = 48_000
    retrieve_k: int = 4  # passages retrieved for a chat
    max_body_bytes: int = 1_000_000  # JSON request bodies (uploads have their own limit)
    log_level: str = "INFO"  # the gateway's log level: DEBUG, INFO, WARNING or ERROR
    # Documents and search.
    max_upload_bytes: int = 20_000_000  # one uploaded file; larger uploads get 413
    documents_timeout_s: float = 10.0  # storing an upload, reading states, deleting (each bus call)
    search_timeout_s: float = 5.0  # a POST /v1/search retrieval
    max_search_k: int = 50  # the most passages one search may ask for
    max_query_chars: int = 2_000  # longest search query (the embedding model's input is bounded)
    # Protection.
    rate_limit_per_minute: int = 0  # requests per key (or client address) per minute; 0 = off
    rate_limit_bucket: str = "gateway-rate-limits"  # NATS key-value bucket shared by the replicas
    rate_limit_max_attempts: int = 50  # compare-and-set retries under contention before a 503
    cors_origins: tuple[str, ...] = ()  # origins allowed by CORS; empty = CORS off
    # The OpenAI-compatible API: model names it accepts; the first is the default.
    models: tuple[str, ...] = ("extractive-cpu",)
    ws_max_message_bytes: int = 100_000  # one WebSocket message from a client
