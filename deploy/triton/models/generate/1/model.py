"""``generate`` (display name ``extractive-cpu``): a CPU stand-in for an LLM.

It takes the inputs and outputs of Triton's vLLM backend, answers with the
source sentences closest to the question and streams them word by word, each
sentence followed by its citation.  Like the vLLM backend it reports, when
asked, why the answer ended (``finish_reason``: ``stop``, or ``length`` when
``max_tokens`` cut it) and its token counts; its tokens are words (the
prompt's, and one per streamed chunk), not an LLM tokenizer's.  Of the
sampling parameters it honours ``max_tokens`` and ``stop`` (the answer ends
before the first stop string); an extractive model has nothing to sample, so
``temperature``, ``top_p``, ``seed`` and the penalties change nothing.  It never invents text: with no relevant
sentence it says so.  Cost: BM25 first keeps the ``candidate_sentences`` best
sentences, only those (and the question) are embedded by the ``embed`` model
through BLS, in one request, and their vectors stay in an LRU cache of
``embedding_cache_entries`` entries for the next prompts citing them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from answer_selection import SelectionLimits, cut_at_stop, finish_answer, plan_answer
from embedding_cache import EmbeddingCache, Vectors, stack_vectors
from prompt_format import parse_prompt

__all__ = ["TritonPythonModel"]

_EMBED_GROUP = 64  # the embed model's max_batch_size: rows of one BLS request


def _parameter(config: dict[str, Any], key: str, default: str) -> str:
    """Read a string parameter of config.pbtxt."""
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    return str(value) if value else default


def _optional_scalar(request: Any, name: str) -> Any:
    """Return the first element of an optional input, or None when absent."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    return tensor.as_numpy().reshape(-1)[0]


def _text(value: Any) -> str:
    """Decode a TYPE_STRING element."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class _BadRequest(Exception):
    """Input the model cannot serve; reported as INVALID_ARG."""


def _stop_strings(value: Any) -> tuple[str, ...]:
    """vLLM's ``stop``: a string or a list of strings (None: none)."""
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
        raise _BadRequest("sampling_parameters.stop must be a string or a list of strings")
    return tuple(stops)


class TritonPythonModel:
    """Extractive, streaming answer model."""

    def initialize(self, args: dict[str, str]) -> None:
        """Read the tuning parameters from config.pbtxt."""
        config = json.loads(args["model_config"])
        self._limits = SelectionLimits(
            min_similarity=float(_parameter(config, "min_similarity", "0.35")),
            max_gap=float(_parameter(config, "max_gap", "0.12")),
            max_sentences=int(_parameter(config, "max_answer_sentences", "3")),
            max_candidates=int(_parameter(config, "max_candidates", "512")),
            candidate_sentences=int(_parameter(config, "candidate_sentences", "12")),
        )
        self._cache = EmbeddingCache(int(_parameter(config, "embedding_cache_entries", "20000")))
        self._default_max_tokens = int(_parameter(config, "default_max_tokens", "256"))
        self._chunk_delay_s = float(_parameter(config, "chunk_delay_ms", "10")) / 1000.0
        self._embed_model = _parameter(config, "embed_model", "embed")
        self._logger = pb_utils.Logger

    async def execute(self, requests: list[Any]) -> None:
        """Serve each request on its own task; responses go through the sender."""
        await asyncio.gather(*(self._serve(request) for request in requests))

    async def _serve(self, request: Any) -> None:
        sender = request.get_response_sender()
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        try:
            prompt, stream, max_tokens, exclude_input, stops = self._read(request)
            answer, stopped = cut_at_stop(await self._answer(prompt), stops)
        except _BadRequest as error:
            failure = pb_utils.TritonError(f"invalid request: {error}", pb_utils.TritonError.INVALID_ARG)
            sender.send(pb_utils.InferenceResponse(error=failure), flags=final)
            return
        except Exception as error:  # reported to the caller, never a crash
            self._logger.log_error(f"generate failed: {error!r}")
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error))), flags=final)
            return
        chunks = answer[:max_tokens] or [""]  # a stop at the very start: one empty last response
        extras = _Extras(request, prompt, "length" if len(answer) > max_tokens and not stopped else "stop")
        if not stream:
            text = "".join(chunks) if exclude_input else prompt + "".join(chunks)
            sender.send(self._response(text, extras.outputs(len(chunks), finished=True)), flags=final)
            return
        await self._stream(request, sender, chunks, extras)

    async def _stream(self, request: Any, sender: Any, chunks: list[str], extras: _Extras) -> None:
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        for index, chunk in enumerate(chunks):
            if request.is_cancelled():
                self._logger.log_info(f"generate cancelled after {index} of {len(chunks)} chunks")
                sender.send(flags=final)
                return
            last = index == len(chunks) - 1
            # The last chunk carries FINAL: an empty final response never reaches gRPC streams.
            sender.send(self._response(chunk, extras.outputs(1, finished=last)), flags=final if last else 0)
            if not last and self._chunk_delay_s > 0:
                await asyncio.sleep(self._chunk_delay_s)  # the pace of a token stream

    def _read(self, request: Any) -> tuple[str, bool, int, bool, tuple[str, ...]]:
        prompt = _text(_optional_scalar(request, "text_input") or b"")
        if not prompt.strip():
            raise _BadRequest("text_input is empty")
        stream = _optional_scalar(request, "stream")
        exclude = _optional_scalar(request, "exclude_input_in_output")
        raw = _optional_scalar(request, "sampling_parameters")
        max_tokens = self._default_max_tokens
        stops: tuple[str, ...] = ()
        if raw is not None and _text(raw).strip():
            try:
                sampling = json.loads(_text(raw))
            except json.JSONDecodeError as error:
                raise _BadRequest(f"sampling_parameters is not valid JSON ({error})") from error
            if not isinstance(sampling, dict):
                raise _BadRequest("sampling_parameters must be a JSON object")
            value = sampling.get("max_tokens", max_tokens)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise _BadRequest("sampling_parameters.max_tokens must be a positive integer")
            max_tokens = value
            stops = _stop_strings(sampling.get("stop"))
        return prompt, bool(stream) if stream is not None else False, max_tokens, bool(exclude), stops

    async def _answer(self, prompt: str) -> list[str]:
        parsed = parse_prompt(prompt)
        if not parsed.question:
            raise _BadRequest("the prompt holds no question")
        plan = plan_answer(parsed, self._limits)
        texts = plan.texts
        found, missing = self._cache.lookup(texts)
        if missing:
            found.update(self._cache.store(missing, await self._embed(missing)))
        return finish_answer(plan, stack_vectors(texts, found), self._limits)

    async def _embed(self, texts: list[str]) -> Vectors:
        """Vectors of ``texts``: one BLS request up to the embed model's batch size."""
        groups = [texts[i : i + _EMBED_GROUP] for i in range(0, len(texts), _EMBED_GROUP)]
        results = await asyncio.gather(*(self._embed_group(group) for group in groups))
        return np.concatenate(results, axis=0)

    async def _embed_group(self, texts: list[str]) -> Vectors:
        batch = np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)
        embed_request = pb_utils.InferenceRequest(
            model_name=self._embed_model,
            requested_output_names=["EMBEDDING"],
            inputs=[pb_utils.Tensor("TEXT", batch)],
        )
        response = await embed_request.async_exec()
        if response.has_error():
            raise RuntimeError(f"embed model failed: {response.error().message()}")
        output = pb_utils.get_output_tensor_by_name(response, "EMBEDDING")
        return np.asarray(output.as_numpy(), dtype=np.float32)

    @staticmethod
    def _response(text: str, extras: list[Any]) -> Any:
        tensor = pb_utils.Tensor("text_output", np.array([text.encode("utf-8")], dtype=np.object_))
        return pb_utils.InferenceResponse(output_tensors=[tensor, *extras])


class _Extras:
    """The vLLM backend's additional outputs a request asked for (``return_<output>`` inputs)."""

    def __init__(self, request: Any, prompt: str, finish_reason: str) -> None:
        self._wanted = {
            name for name in _EXTRA_OUTPUTS if bool(_optional_scalar(request, f"return_{name}"))
        }
        self._input_tokens = len(prompt.split())
        self._finish_reason = finish_reason

    def outputs(self, output_tokens: int, *, finished: bool) -> list[Any]:
        """The tensors of one response: ``output_tokens`` is the count of this response alone."""
        values = {
            # vLLM sends str(None) until the sequence finishes
            "finish_reason": np.array([(self._finish_reason if finished else "None").encode()], np.object_),
            "num_input_tokens": np.array([self._input_tokens], np.uint32),
            "num_output_tokens": np.array([output_tokens], np.uint32),
        }
        return [pb_utils.Tensor(name, values[name]) for name in _EXTRA_OUTPUTS if name in self._wanted]


_EXTRA_OUTPUTS = ("finish_reason", "num_input_tokens", "num_output_tokens")
