"""Generation (streamed), embeddings and images: the inference service's bus API.

A generation is a request-reply that is acknowledged at once with
`GenerateAccepted`; the text then arrives on `stream_subject(request_id)` as
`TokenChunk` messages with increasing `seq`, ended by one `GenerateResult` or
one `ErrorReply`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from proto.common import Message

__all__ = [
    "CancelGenerate",
    "EmbedReply",
    "EmbedRequest",
    "GenerateAccepted",
    "GenerateRequest",
    "GenerateResult",
    "ImageReply",
    "ImageRequest",
    "MAX_STOP_SEQUENCES",
    "Penalty",
    "Sampling",
    "StopSequence",
    "StreamEvent",
    "Temperature",
    "TokenChunk",
    "TopP",
]


# OpenAI's ranges of the sampling parameters, named once (the gateway's OpenAI body takes them too).
Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]
TopP = Annotated[float, msgspec.Meta(gt=0, le=1)]
Penalty = Annotated[float, msgspec.Meta(ge=-2, le=2)]
StopSequence = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
MAX_STOP_SEQUENCES = 4


class Sampling(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How the model samples, in vLLM's names (`SamplingParams`) and OpenAI's ranges.

    Unset fields keep the model's defaults.
    """

    temperature: Temperature | None = None
    top_p: TopP | None = None
    seed: int | None = None
    # the answer ends before the first of these
    stop: Annotated[tuple[StopSequence, ...], msgspec.Meta(max_length=MAX_STOP_SEQUENCES)] = ()
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None


class GenerateRequest(Message, tag="generate.request"):
    """Generate an answer to `prompt`, streaming chunks to `stream_subject`."""

    request_id: str
    prompt: str
    stream_subject: str
    max_tokens: int = 512
    timeout_ms: int = 30_000
    priority: str = "interactive"  # interactive | batch: batch work never delays chat
    sampling: Sampling = Sampling()


class GenerateAccepted(Message, tag="generate.accepted"):
    """The generation started; chunks follow on the stream subject."""

    request_id: str
    model: str


class TokenChunk(Message, tag="token"):
    """One piece of streamed text; `seq` counts from 0 without gaps."""

    request_id: str
    seq: int
    text: str


class GenerateResult(Message, tag="generate.result"):
    """The end of a stream: the whole answer and how it went."""

    request_id: str
    answer: str
    tokens: int  # as the model counts them (its streamed chunks when it does not say)
    model: str
    first_token_ms: float
    total_ms: float
    finish_reason: str = "stop"  # "length" when max_tokens cut the answer
    prompt_tokens: int = 0  # the whole prompt (question and sources); 0 when the model does not say


class CancelGenerate(Message, tag="generate.cancel"):
    """Stop a generation (the client went away)."""

    request_id: str


class EmbedRequest(Message, tag="embed.request"):
    """Embed a batch of texts; `batch` priority yields Triton to `interactive` work."""

    texts: list[str]
    timeout_ms: int = 10_000
    priority: str = "interactive"  # interactive | batch (e.g. document ingestion)


class EmbedReply(Message, tag="embed.reply"):
    """One normalised vector per input text, in order."""

    vectors: list[list[float]]
    model: str
    dimensions: int


class ImageRequest(Message, tag="image.request"):
    """Render an image for a prompt."""

    prompt: str
    width: int = 256
    height: int = 256
    timeout_ms: int = 30_000


class ImageReply(Message, tag="image.reply"):
    """PNG bytes (base64 in JSON)."""

    png: bytes
    model: str


# What a stream subscriber decodes: chunks, then one result or one error.
StreamEvent = TokenChunk | GenerateResult  # an ErrorReply may also end a stream
