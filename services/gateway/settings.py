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
    health_timeout_s: float = 1.0  # each service's answer to a readiness probe
    max_prompt_chars: int = 20_000  # longer prompts are refused with 413
    max_source_chars: int = 4_000  # text of one page or passage put into the prompt
    retrieve_k: int = 4  # passages retrieved for a chat
    max_body_bytes: int = 1_000_000  # JSON request bodies (uploads have their own limit)
    log_level: str = "INFO"
