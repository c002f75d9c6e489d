"""What each Triton model is sent and gives back: checked requests in, tensors out and in.

`generate` has the vLLM backend's inputs (`text_input`, `stream`,
`sampling_parameters`, `exclude_input_in_output`) and streams `text_output`;
`embed` takes a `[n, 1]` batch of `TEXT` and gives one `EMBEDDING` row per
text; `image` takes `PROMPT`, `WIDTH` and `HEIGHT` and gives PNG bytes. A
request outside the configured limits is refused here, before any network.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
from tritonclient.grpc import InferInput

from services.inference.errors import InvalidInferenceRequest

if TYPE_CHECKING:
    from proto.inference import Sampling
    from services.inference.settings import InferenceSettings

__all__ = [
    "GenerationChunk",
    "GenerationUsage",
    "check_embed",
    "check_generate",
    "check_image",
    "embed_inputs",
    "embed_priority",
    "embedding_rows",
    "generate_inputs",
    "generation_chunk",
    "image_inputs",
    "image_png",
]

# Triton priority levels of the embed model's dynamic batcher (1 is served first;
# 0 means the model's default level, which is interactive).
_INTERACTIVE_PRIORITY = 1
_BATCH_PRIORITY = 2


class GenerationChunk(msgspec.Struct, frozen=True, kw_only=True):
    """One streamed piece of generated text; ``final`` marks the last one.

    The counts and the finish reason are the model's (the vLLM backend's
    additional outputs); None when the model does not report them.
    """

    text: str
    final: bool
    finish_reason: str | None = None  # "stop" or "length", on the last chunk
    prompt_tokens: int | None = None
    tokens: int | None = None  # tokens of this chunk


class GenerationUsage:
    """What the model reported over a generation's chunks: token counts and why it ended."""

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.tokens: int | None = None  # None: the model counted none (then count the chunks)
        self.finish_reason = "stop"

    def add(self, chunk: GenerationChunk) -> None:
        """Count one streamed chunk."""
        if chunk.prompt_tokens is not None:
            self.prompt_tokens = chunk.prompt_tokens
        if chunk.tokens is not None:
            self.tokens = (self.tokens or 0) + chunk.tokens
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason


def check_generate(settings: InferenceSettings, prompt: str, max_tokens: int) -> None:
    """Refuse an empty or too long prompt, or a max_tokens outside the limit."""
    if not prompt.strip():
        raise InvalidInferenceRequest("the prompt is empty")
    if len(prompt) > settings.max_prompt_chars:
        raise InvalidInferenceRequest(f"the prompt is longer than {settings.max_prompt_chars} characters")
    if not 1 <= max_tokens <= settings.max_tokens_limit:
        raise InvalidInferenceRequest(f"max_tokens must be between 1 and {settings.max_tokens_limit}")


def check_embed(settings: InferenceSettings, texts: Sequence[str]) -> None:
    """Refuse no texts, too many texts, or a text longer than the limit."""
    if not texts or len(texts) > settings.max_embed_texts:
        raise InvalidInferenceRequest(f"embed takes 1 to {settings.max_embed_texts} texts, got {len(texts)}")
    if any(len(text) > settings.max_embed_text_chars for text in texts):
        raise InvalidInferenceRequest(f"a text is longer than {settings.max_embed_text_chars} characters")


def check_image(settings: InferenceSettings, prompt: str, width: int, height: int) -> None:
    """Refuse an empty or too long prompt, or a side outside the limits."""
    if not prompt.strip() or len(prompt) > settings.max_image_prompt_chars:
        raise InvalidInferenceRequest(
            f"the image prompt must hold 1 to {settings.max_image_prompt_chars} characters"
        )
    for side in (width, height):
        if not settings.min_image_side <= side <= settings.max_image_side:
            raise InvalidInferenceRequest(
                f"width and height must be {settings.min_image_side} to {settings.max_image_side}"
            )


def generate_inputs(prompt: str, max_tokens: int, sampling: Sampling | None = None) -> list[InferInput]:
    """A streamed generation of at most `max_tokens`, without the prompt echoed back.

    It asks for the finish reason and the token counts too (the vLLM backend's
    additional outputs), which the OpenAI API's `finish_reason` and `usage` report.
    """
    chosen = msgspec.to_builtins(sampling) if sampling is not None else {}  # unset fields are left out
    parameters = json.dumps({**chosen, "max_tokens": max_tokens})
    return [
        _text_input("text_input", prompt),
        _scalar_input("stream", True, "BOOL", np.bool_),
        _text_input("sampling_parameters", parameters),
        _scalar_input("exclude_input_in_output", True, "BOOL", np.bool_),
        *(_scalar_input(f"return_{name}", True, "BOOL", np.bool_) for name in _GENERATE_EXTRAS),
    ]


_GENERATE_EXTRAS = ("finish_reason", "num_input_tokens", "num_output_tokens")


def generation_chunk(result: Any) -> GenerationChunk:
    """The text of one streamed response, whether it is the last, and what the model said of it."""
    response = result.get_response()
    final = response.parameters["triton_final_response"].bool_param
    values = result.as_numpy("text_output")
    text = "".join(v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values.reshape(-1))
    reason = _first(result, "finish_reason")
    reason = reason.decode("utf-8") if isinstance(reason, bytes) else reason
    prompt_tokens, tokens = _first(result, "num_input_tokens"), _first(result, "num_output_tokens")
    return GenerationChunk(
        text=text,
        final=final,
        finish_reason=str(reason) if reason not in (None, "None", "") else None,  # vLLM: "None" until done
        prompt_tokens=None if prompt_tokens is None else int(prompt_tokens),
        tokens=None if tokens is None else int(tokens),
    )


def _first(result: Any, name: str) -> Any:
    """The first element of an output the response may not have (None then)."""
    values = result.as_numpy(name)
    return None if values is None or values.size == 0 else values.reshape(-1)[0]


def embed_inputs(texts: list[str]) -> list[InferInput]:
    """One batch of texts, one row each."""
    batch = InferInput("TEXT", [len(texts), 1], "BYTES")
    batch.set_data_from_numpy(np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_))
    return [batch]


def embed_priority(*, batch: bool) -> int:
    """Batch work (document ingestion) waits behind interactive requests in Triton's batcher."""
    return _BATCH_PRIORITY if batch else _INTERACTIVE_PRIORITY


def embedding_rows(result: Any) -> list[list[float]]:
    """One vector per text of the batch, in order."""
    matrix: list[list[float]] = np.asarray(result.as_numpy("EMBEDDING"), dtype=np.float32).tolist()
    return matrix


def image_inputs(prompt: str, width: int, height: int) -> list[InferInput]:
    """One picture of `prompt`, `width` by `height` pixels."""
    return [
        _text_input("PROMPT", prompt),
        _scalar_input("WIDTH", width, "INT32", np.int32),
        _scalar_input("HEIGHT", height, "INT32", np.int32),
    ]


def image_png(result: Any) -> bytes:
    """The picture's PNG bytes."""
    return bytes(result.as_numpy("IMAGE").reshape(-1)[0])


def _text_input(name: str, text: str) -> InferInput:
    tensor = InferInput(name, [1], "BYTES")
    tensor.set_data_from_numpy(np.array([text.encode("utf-8")], dtype=np.object_))
    return tensor


def _scalar_input(name: str, value: bool | int, datatype: str, dtype: type[Any]) -> InferInput:
    tensor = InferInput(name, [1], datatype)
    tensor.set_data_from_numpy(np.array([value], dtype=dtype))
    return tensor
