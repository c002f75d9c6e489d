"""The only Triton client: generation streams, embeddings and images over gRPC.

One ``tritonclient.grpc.aio`` channel per process.  Every call has a
deadline (the caller's timeout, capped by the service's limit for the model:
``generate_timeout_s``, ``embed_timeout_s``, ``image_timeout_s``), waits for
one of ``max_in_flight`` slots (the wait is the queue metric), and is retried
with backoff while Triton is unreachable, within its deadline, when repeating
it is safe (embed, image; generate before its first chunk) (``deadlines.py``).
What each model is sent and gives back is in ``model_io.py``; gRPC failures
become the errors of ``errors.py`` (``triton_errors.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import tritonclient.grpc.aio as triton_aio
from tritonclient.grpc import (
    MAX_GRPC_MESSAGE_SIZE,
    InferInput,
    InferRequestedOutput,
    KeepAliveOptions,
)
from tritonclient.utils import InferenceServerException

from runtime.logging import get_logger
from services.inference.deadlines import (
    InFlightSlots,
    deadline_within,
    raise_if_cancelled,
    retry_while_unavailable,
    seconds_left,
    time_left,
)
from services.inference.errors import InferenceError, TritonUnavailable
from services.inference.model_io import (
    GenerationChunk,
    check_embed,
    check_generate,
    check_image,
    embed_inputs,
    embed_priority,
    embedding_rows,
    generate_inputs,
    generation_chunk,
    image_inputs,
    image_png,
)
from services.inference.settings import InferenceSettings
from services.inference.triton_errors import triton_error

if TYPE_CHECKING:
    from proto.inference import Sampling

__all__ = ["TritonModels"]

_log = get_logger(__name__)

_T = TypeVar("_T")


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
        self._slots = InFlightSlots(settings.max_in_flight)
        self._roles = {
            "generate": settings.generate_model,
            "embed": settings.embed_model,
            "image": settings.image_model,
        }
        self._display_names: dict[str, str] = {}

    @property
    def in_flight(self) -> int:
        """Requests at Triton now."""
        return self._slots.in_flight

    @property
    def queued(self) -> int:
        """Requests waiting for a free slot."""
        return self._slots.queued

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

    async def display_name(self, role: str) -> str:
        """The role's display name, read once from its Triton config; `TritonUnavailable` if unreadable.

        An embedding's model name is part of its meaning (rag keeps a collection to
        one model), so it is never stood in for by the config name when the read fails.
        """
        await self._learn_display_name(role)
        if role not in self._display_names:
            raise TritonUnavailable(f"the display name of model {self._roles[role]!r} could not be read")
        return self._display_names[role]

    async def _learn_display_name(self, role: str) -> None:
        """Read the model's display name once, after its first success."""
        if role not in self._display_names:
            await self._load_display_name(role, self._roles[role])

    async def _load_display_name(self, role: str, name: str) -> None:
        try:
            config = await self._client.get_model_config(name, client_timeout=self._settings.ready_timeout_s)
        except (InferenceServerException, grpc.RpcError, OSError) as exc:
            # Read again on the next readiness probe or embed; until then the model has no name to give.
            _log.warning("could not read the model's config", model=name, error=repr(exc))
            return
        parameter = config.config.parameters.get("display_name")
        self._display_names[role] = parameter.string_value if parameter and parameter.string_value else name

    # -- generation ---------------------------------------------------------

    async def generate(
        self, prompt: str, *, max_tokens: int, timeout_s: float, sampling: Sampling | None = None
    ) -> AsyncGenerator[GenerationChunk, None]:
        """Yield the answer's chunks in order (text, and what the model reports of it).

        The whole stream ends by `timeout_s`, or by `generate_timeout_s` if that
        comes first: then the gRPC stream's deadline cancels the request at Triton
        and `InferenceTimeout` is raised. Cancelling the consuming task, or closing
        this iterator (use ``contextlib.aclosing``), cancels the request too.
        """
        check_generate(self._settings, prompt, max_tokens)
        name = self._settings.generate_model
        deadline = deadline_within(timeout_s, self._settings.generate_timeout_s)
        inputs = generate_inputs(prompt, max_tokens, sampling)
        async with self._slots.hold(deadline):
            backoff = self._settings.retry_backoff_s
            while True:
                started = False
                try:
                    async for chunk in self._stream(name, inputs, time_left(deadline)):
                        if not started:
                            started = True
                            await self._learn_display_name("generate")
                        yield chunk
                        if chunk.final:
                            return
                    return
                except InferenceError as error:
                    raise_if_cancelled()  # a cancel grpc swallowed must not become a retry
                    if (
                        started
                        or not isinstance(error, TritonUnavailable)
                        or seconds_left(deadline) <= backoff
                    ):
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
                chunk = generation_chunk(result)
                yield chunk
                if chunk.final:
                    return
        except grpc.aio.AioRpcError as error:
            raise await self._error(name, str(error.code()), error.details() or "") from None
        except InferenceServerException as error:
            raise await self._error(name, error.status(), error.message() or "") from None
        finally:
            stream.cancel()  # a no-op once finished; otherwise Triton sees is_cancelled()

    # -- embeddings and images ----------------------------------------------

    async def embed(
        self, texts: Sequence[str], *, timeout_s: float, batch: bool = False
    ) -> list[list[float]]:
        """Return one normalised 384-d vector per text, in order, within `timeout_s` or `embed_timeout_s`.

        `batch` work (document ingestion) goes to Triton's lower priority level, so
        the dynamic batcher serves interactive requests (chat queries) first.
        """
        check_embed(self._settings, texts)
        deadline = deadline_within(timeout_s, self._settings.embed_timeout_s)
        size = self._settings.embed_group_size
        groups = [list(texts[i : i + size]) for i in range(0, len(texts), size)]
        priority = embed_priority(batch=batch)
        vectors = await _all_or_nothing([self._embed_group(group, deadline, priority) for group in groups])
        return [row for group in vectors for row in group]

    async def _embed_group(self, texts: list[str], deadline: float, priority: int) -> list[list[float]]:
        result = await self._infer("embed", embed_inputs(texts), "EMBEDDING", deadline, priority=priority)
        return embedding_rows(result)

    async def image(self, prompt: str, *, width: int, height: int, timeout_s: float) -> bytes:
        """Return PNG bytes for the prompt, within `timeout_s` or `image_timeout_s`, whichever is shorter."""
        check_image(self._settings, prompt, width, height)
        deadline = deadline_within(timeout_s, self._settings.image_timeout_s)
        result = await self._infer("image", image_inputs(prompt, width, height), "IMAGE", deadline)
        return image_png(result)

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
                    client_timeout=time_left(deadline),
                    priority=priority,
                )
            except InferenceServerException as error:
                raise await self._error(name, error.status(), error.message() or "") from None

        s = self._settings
        async with self._slots.hold(deadline):
            result = await retry_while_unavailable(
                call, deadline, backoff_s=s.retry_backoff_s, backoff_max_s=s.retry_backoff_max_s
            )
        await self._learn_display_name(role)
        return result

    # -- errors -------------------------------------------------------------

    async def _error(self, name: str, status: str | None, message: str) -> InferenceError:
        return await triton_error(
            name, status, message, triton_url=self._settings.triton_grpc_url, server_ready=self._server_ready
        )

    async def _server_ready(self) -> bool:
        try:
            return bool(await self._client.is_server_ready(client_timeout=self._settings.ready_timeout_s))
        except (InferenceServerException, grpc.RpcError, OSError):
            return False


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
