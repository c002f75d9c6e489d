"""The only Triton client: generation streams, embeddings and images over gRPC.

One ``tritonclient.grpc.aio`` channel per process.  Every call has a
deadline, waits for one of ``max_in_flight`` slots (the wait is the queue
metric), and is retried with backoff while Triton is unreachable, within its
deadline, when repeating it is safe (embed, image; generate before its first
chunk).  gRPC failures become the errors of ``errors.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import grpc
import msgspec
import numpy as np
import tritonclient.grpc.aio as triton_aio
from tritonclient.grpc import (
    MAX_GRPC_MESSAGE_SIZE,
    InferInput,
    InferRequestedOutput,
    KeepAliveOptions,
)
from tritonclient.utils import InferenceServerException

from services.inference.errors import (
    InferenceError,
    InferenceTimeout,
    InvalidInferenceRequest,
    ModelFailed,
    TritonUnavailable,
    UnknownModel,
)
from services.inference.settings import InferenceSettings

__all__ = ["GenerationChunk", "TritonModels"]

# Triton priority levels of the embed model's dynamic batcher (1 is served first;
# 0 means the model's default level, which is interactive).
_INTERACTIVE_PRIORITY = 1
_BATCH_PRIORITY = 2

_T = TypeVar("_T")
_INVALID_MARKERS = ("invalid request:", "unexpected inference input", "expected", "unable to find")


class GenerationChunk(msgspec.Struct, frozen=True):
    """One streamed piece of generated text; ``final`` marks the last one."""

    text: str
    final: bool


def _text_input(name: str, text: str) -> InferInput:
    tensor = InferInput(name, [1], "BYTES")
    tensor.set_data_from_numpy(np.array([text.encode("utf-8")], dtype=np.object_))
    return tensor


def _scalar_input(name: str, value: bool | int, datatype: str, dtype: type[Any]) -> InferInput:
    tensor = InferInput(name, [1], datatype)
    tensor.set_data_from_numpy(np.array([value], dtype=dtype))
    return tensor


class TritonModels:
    """Generation, embedding and image models served by one Triton server."""

    def __init__(self, settings: InferenceSettings) -> None:
        self._settings = settings
        keepalive = KeepAliveOptions()
        self._client = triton_aio.InferenceServerClient(
            settings.triton_grpc_url,
            channel_args=[
                ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
                ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
                ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
                ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
                ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
                ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
                # Reconnect within 0.5 s after a Triton restart (gRPC's default waits seconds).
                ("grpc.initial_reconnect_backoff_ms", settings.reconnect_backoff_ms),
                ("grpc.min_reconnect_backoff_ms", settings.reconnect_backoff_ms),
                ("grpc.max_reconnect_backoff_ms", settings.reconnect_backoff_max_ms),
            ],
        )
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._roles = {
            "generate": settings.generate_model,
            "embed": settings.embed_model,
            "image": settings.image_model,
        }
        self._display_names: dict[str, str] = {}
        self.in_flight = 0
        self.queued = 0

    @property
    def model_names(self) -> dict[str, str]:
        """Role -> display name (e.g. ``generate`` -> ``extractive-cpu``); known after ``ready()``."""
        return {role: self._display_names.get(role, name) for role, name in self._roles.items()}

    async def close(self) -> None:
        """Close the gRPC channel."""
        await self._client.close()

    async def ready(self) -> dict[str, bool]:
        """Model name -> ready; all False when Triton is unreachable (never raises)."""
        states: dict[str, bool] = {}
        for role, name in self._roles.items():
            try:
                states[name] = bool(
                    await self._client.is_model_ready(name, client_timeout=self._settings.ready_timeout_s)
                )
            except (InferenceServerException, grpc.RpcError, OSError):
                states[name] = False
            if states[name] and role not in self._display_names:
                await self._load_display_name(role, name)
        return states

    async def _learn_display_name(self, role: str) -> None:
        """Read the model's display name once, after its first success."""
        if role not in self._display_names:
            await self._load_display_name(role, self._roles[role])

    async def _load_display_name(self, role: str, name: str) -> None:
        try:
            config = await self._client.get_model_config(name, client_timeout=self._settings.ready_timeout_s)
        except (InferenceServerException, grpc.RpcError, OSError):
            return
        parameter = config.config.parameters.get("display_name")
        self._display_names[role] = parameter.string_value if parameter and parameter.string_value else name

    # -- generation ---------------------------------------------------------

    async def generate(self, prompt: str, *, max_tokens: int, timeout_s: float) -> AsyncGenerator[str, None]:
        """Yield the answer's text chunks in order.

        Cancelling the consuming task, or closing this iterator (use
        ``contextlib.aclosing``), cancels the request at Triton.
        """
        self._check_generate(prompt, max_tokens)
        name = self._settings.generate_model
        deadline = asyncio.get_running_loop().time() + timeout_s
        parameters = json.dumps({"max_tokens": max_tokens})
        inputs = [
            _text_input("text_input", prompt),
            _scalar_input("stream", True, "BOOL", np.bool_),
            _text_input("sampling_parameters", parameters),
            _scalar_input("exclude_input_in_output", True, "BOOL", np.bool_),
        ]
        async with self._slot(deadline):
            backoff = self._settings.retry_backoff_s
            while True:
                started = False
                try:
                    async for chunk in self._stream(name, inputs, self._remaining(deadline)):
                        if not started:
                            started = True
                            await self._learn_display_name("generate")
                        yield chunk.text
                        if chunk.final:
                            return
                    return
                except InferenceError as error:
                    if started or not isinstance(error, TritonUnavailable) or _left(deadline) <= backoff:
                        raise
                await asyncio.sleep(backoff)  # the retry backoff while Triton is away
                backoff = min(backoff * 2, self._settings.retry_backoff_max_s)

    async def _stream(
        self, name: str, inputs: list[InferInput], timeout_s: float
    ) -> AsyncIterator[GenerationChunk]:
        async def one_request() -> AsyncIterator[dict[str, Any]]:
            # One request per stream: the generator must end for the stream to end.
            yield {"model_name": name, "inputs": inputs}

        stream = self._client.stream_infer(one_request(), stream_timeout=timeout_s)
        try:
            async for result, error in stream:
                if error is not None:
                    raise await self._error(name, None, str(error.message() or error))
                response = result.get_response()
                final = response.parameters["triton_final_response"].bool_param
                values = result.as_numpy("text_output")
                text = "".join(
                    v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values.reshape(-1)
                )
                yield GenerationChunk(text=text, final=final)
                if final:
                    return
        except grpc.aio.AioRpcError as error:
            raise await self._error(name, str(error.code()), error.details() or "") from None
        except InferenceServerException as error:
            raise await self._error(name, error.status(), error.message() or "") from None
        finally:
            stream.cancel()  # a no-op once finished; otherwise Triton sees is_cancelled()

    def _check_generate(self, prompt: str, max_tokens: int) -> None:
        if not prompt.strip():
            raise InvalidInferenceRequest("the prompt is empty")
        if len(prompt) > self._settings.max_prompt_chars:
            raise InvalidInferenceRequest(
                f"the prompt is longer than {self._settings.max_prompt_chars} characters"
            )
        if not 1 <= max_tokens <= self._settings.max_tokens_limit:
            raise InvalidInferenceRequest(
                f"max_tokens must be between 1 and {self._settings.max_tokens_limit}"
            )

    # -- embeddings and images ----------------------------------------------

    async def embed(
        self, texts: Sequence[str], *, timeout_s: float, batch: bool = False
    ) -> list[list[float]]:
        """Return one normalised 384-d vector per text, in order.

        `batch` work (document ingestion) goes to Triton's lower priority level, so
        the dynamic batcher serves interactive requests (chat queries) first.
        """
        s = self._settings
        if not texts or len(texts) > s.max_embed_texts:
            raise InvalidInferenceRequest(f"embed takes 1 to {s.max_embed_texts} texts, got {len(texts)}")
        if any(len(text) > s.max_embed_text_chars for text in texts):
            raise InvalidInferenceRequest(f"a text is longer than {s.max_embed_text_chars} characters")
        deadline = asyncio.get_running_loop().time() + timeout_s
        groups = [list(texts[i : i + s.embed_group_size]) for i in range(0, len(texts), s.embed_group_size)]
        priority = _BATCH_PRIORITY if batch else _INTERACTIVE_PRIORITY
        vectors = await _all_or_nothing([self._embed_group(group, deadline, priority) for group in groups])
        return [row for group in vectors for row in group]

    async def _embed_group(self, texts: list[str], deadline: float, priority: int) -> list[list[float]]:
        batch = InferInput("TEXT", [len(texts), 1], "BYTES")
        batch.set_data_from_numpy(np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_))
        result = await self._infer("embed", [batch], "EMBEDDING", deadline, priority=priority)
        matrix: list[list[float]] = np.asarray(result.as_numpy("EMBEDDING"), dtype=np.float32).tolist()
        return matrix

    async def image(self, prompt: str, *, width: int, height: int, timeout_s: float) -> bytes:
        """Return PNG bytes for the prompt."""
        s = self._settings
        if not prompt.strip() or len(prompt) > s.max_image_prompt_chars:
            raise InvalidInferenceRequest(
                f"the image prompt must hold 1 to {s.max_image_prompt_chars} characters"
            )
        for side in (width, height):
            if not s.min_image_side <= side <= s.max_image_side:
                raise InvalidInferenceRequest(
                    f"width and height must be {s.min_image_side} to {s.max_image_side}"
                )
        deadline = asyncio.get_running_loop().time() + timeout_s
        inputs = [
            _text_input("PROMPT", prompt),
            _scalar_input("WIDTH", width, "INT32", np.int32),
            _scalar_input("HEIGHT", height, "INT32", np.int32),
        ]
        result = await self._infer("image", inputs, "IMAGE", deadline)
        return bytes(result.as_numpy("IMAGE").reshape(-1)[0])

    async def _infer(
        self, role: str, inputs: list[InferInput], output: str, deadline: float, *, priority: int = 0
    ) -> Any:
        """One idempotent request to the model of ``role``, retried while Triton is unreachable."""
        name = self._roles[role]

        async def call() -> Any:
            try:
                return await self._client.infer(
                    name,
                    inputs,
                    outputs=[InferRequestedOutput(output)],
                    client_timeout=self._remaining(deadline),
                    priority=priority,
                )
            except InferenceServerException as error:
                raise await self._error(name, error.status(), error.message() or "") from None

        async with self._slot(deadline):
            result = await self._retrying(call, deadline)
        await self._learn_display_name(role)
        return result

    async def _retrying(self, call: Callable[[], Awaitable[_T]], deadline: float) -> _T:
        backoff = self._settings.retry_backoff_s
        while True:
            try:
                return await call()
            except TritonUnavailable:
                if _left(deadline) <= backoff:
                    raise
            await asyncio.sleep(backoff)  # the retry backoff while Triton is away
            backoff = min(backoff * 2, self._settings.retry_backoff_max_s)

    # -- limits, deadlines and errors ---------------------------------------

    @asynccontextmanager
    async def _slot(self, deadline: float) -> AsyncIterator[None]:
        """Hold one of ``max_in_flight`` slots; waiting for it counts as queued."""
        self.queued += 1
        try:
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        except TimeoutError:
            raise InferenceTimeout("timed out waiting for a free inference slot") from None
        finally:
            self.queued -= 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()

    @staticmethod
    def _remaining(deadline: float) -> float:
        remaining = _left(deadline)
        if remaining <= 0:
            raise InferenceTimeout("the inference deadline passed")
        return remaining

    async def _error(self, name: str, status: str | None, message: str) -> InferenceError:
        """Map a gRPC status (None for in-stream errors) and message to one of our errors."""
        lowered = message.lower()
        if status == "StatusCode.NOT_FOUND" or "unknown model" in lowered:
            # A server shutting down reports its models as unknown: ask whether it is up.
            if await self._server_ready():
                return UnknownModel(f"Triton does not serve a model named {name!r}")
            return TritonUnavailable(
                f"Triton at {self._settings.triton_grpc_url} is shutting down or restarting"
            )
        if status == "StatusCode.DEADLINE_EXCEEDED":
            return InferenceTimeout(f"{name}: Triton did not answer within the deadline")
        if status in ("StatusCode.UNAVAILABLE", "StatusCode.CANCELLED"):
            return TritonUnavailable(f"Triton is unreachable at {self._settings.triton_grpc_url}: {message}")
        if status == "StatusCode.INVALID_ARGUMENT" or lowered.startswith(_INVALID_MARKERS):
            return InvalidInferenceRequest(f"{name}: {message}")
        return ModelFailed(f"{name} failed: {message}")

    async def _server_ready(self) -> bool:
        try:
            return bool(await self._client.is_server_ready(client_timeout=self._settings.ready_timeout_s))
        except (InferenceServerException, grpc.RpcError, OSError):
            return False


def _left(deadline: float) -> float:
    """Seconds until ``deadline`` on the loop's clock (negative once passed)."""
    return deadline - asyncio.get_running_loop().time()


async def _all_or_nothing(calls: list[Awaitable[_T]]) -> list[_T]:
    """Await all; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
