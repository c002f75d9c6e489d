"""Settings of the inference service (loaded from ``INFERENCE_<FIELD>`` variables)."""

from __future__ import annotations

import msgspec

__all__ = ["InferenceSettings"]


class InferenceSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Every limit and timeout of the inference service; defaults suit a laptop."""

    triton_grpc_url: str = "127.0.0.1:8001"  # Triton's gRPC endpoint, host:port
    nats_url: str = "nats://127.0.0.1:4222"  # the bus
    generate_model: str = "generate"  # Triton model name of the LLM (decoupled, vLLM-style I/O)
    embed_model: str = "embed"  # Triton model name of the embedding model
    image_model: str = "image"  # Triton model name of the image model
    max_in_flight: int = 64  # Triton requests in flight per process; more wait in a queue
    # longest one generation stream may take, queue wait included; then it is stopped at Triton
    # and ends with a timeout error. A caller's shorter deadline (timeout_ms, a job item's) wins
    generate_timeout_s: float = 120.0
    # longest one embed call (all its texts) may take, queue wait included; a shorter timeout_ms wins
    embed_timeout_s: float = 30.0
    # longest one image may take, queue wait included; a caller's shorter deadline wins
    image_timeout_s: float = 60.0
    ready_timeout_s: float = 2.0  # deadline of one readiness / model-config probe
    max_prompt_chars: int = 48_000  # longest prompt accepted for generation
    max_tokens_limit: int = 4096  # largest max_tokens a caller may ask for
    max_embed_texts: int = 256  # most texts in one embed call
    max_embed_text_chars: int = 8_000  # longest text accepted for embedding
    embed_group_size: int = 4  # texts per Triton request; Triton's batcher merges callers
    max_image_prompt_chars: int = 2_000  # longest image prompt
    min_image_side: int = 16  # smallest width/height in pixels
    max_image_side: int = 1024  # largest width/height in pixels
    retry_backoff_s: float = 0.1  # first pause before retrying after a lost connection
    retry_backoff_max_s: float = 1.0  # longest pause between retries
    reconnect_backoff_ms: int = 100  # gRPC channel reconnect backoff (initial and minimum)
    reconnect_backoff_max_ms: int = 500  # gRPC channel reconnect backoff ceiling
