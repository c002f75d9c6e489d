"""The extractive generator's logic, run in-process (the seed's `generate_text`).

The selection code is imported by path from the Triton model folder
(`deploy/triton/models/generate/1/`), so the baseline answers with exactly the
logic the `generate` model runs (BM25 shortlist, then embeddings of the
shortlisted sentences, kept in an LRU cache of the same size). The encoder is
imported the same way from the `embed` model's folder (`minilm_encoder.py`:
all-MiniLM-L6-v2 on ONNX Runtime, the same exported graph), so only where it
runs differs: here in this process, there the `embed` model via BLS.

Pace: the `generate` model streams its answer one chunk every `chunk_delay_ms`
(10 ms, config.pbtxt), the decoding time an LLM on a GPU would take. The same
model run in-process takes the same time; the seed calls `generate_text`
synchronously inside an `async def` handler, so here that time blocks the
event loop (the pitfall the seed's own Example 5-5 describes). `pace=False`
drops it, for the comparison of CPU work alone.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from deploy.triton.local import default_onnx_cache_dir
from proto.prompt import PromptSource, build_prompt

__all__ = [
    "EMBED_MODEL_DIR",
    "GENERATE_MODEL_DIR",
    "Encoder",
    "ExtractiveGenerator",
    "load_model_module",
    "open_embed_encoder",
]

_MODELS = Path(__file__).resolve().parents[2] / "deploy" / "triton" / "models"
GENERATE_MODEL_DIR = _MODELS / "generate" / "1"
EMBED_MODEL_DIR = _MODELS / "embed" / "1"
EMBED_BATCH = 16  # the embed model's encode_batch_size (most rows per forward pass)
EMBED_PRECISION = "int8"  # the embed model's `precision` (its quantised ONNX graph)
EMBED_THREADS = 0  # intra-op threads of the in-process encoder: 0 = every core (the runtime's default)
EMBEDDING_CACHE_ENTRIES = 20_000  # config.pbtxt `embedding_cache_entries` of the generate model
CHUNK_DELAY_S = 0.010  # config.pbtxt `chunk_delay_ms` of the generate model: its pause between chunks


def load_model_module(name: str, directory: Path = GENERATE_MODEL_DIR) -> ModuleType:
    """Import `directory/<name>.py` under its bare name, as Triton's stub does (the helpers need it)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, directory / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {name} from {directory}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:  # a sibling helper it imports: load that first, then retry
        del sys.modules[name]
        if exc.name is None or not (directory / f"{exc.name}.py").is_file():
            raise
        load_model_module(exc.name, directory)
        return load_model_module(name, directory)
    return module


class Encoder(Protocol):
    """What `minilm_encoder.open_encoder` returns (that module is imported by path, untyped)."""

    def encode(self, texts: list[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Unit vectors of `texts`, in order."""
        ...


def open_embed_encoder(runtime: str = "onnxruntime") -> Encoder:
    """The `embed` model's encoder, in this process, with the graph cache local Tritons use."""
    encoders = load_model_module("minilm_encoder", EMBED_MODEL_DIR)
    encoder: Encoder = encoders.open_encoder(
        runtime,
        batch_size=EMBED_BATCH,
        threads=EMBED_THREADS,
        cache_dir=default_onnx_cache_dir(),
        precision=EMBED_PRECISION if runtime == "onnxruntime" else "fp32",
    )
    return encoder


class ExtractiveGenerator:
    """`generate(prompt) -> answer`: synchronous and CPU-bound, like an in-process LLM call."""

    def __init__(self, encoder: Encoder, *, pace: bool = True) -> None:
        self._prompt_format = load_model_module("prompt_format")
        self._selection = load_model_module("answer_selection")
        self._encoder = encoder
        self._chunk_delay_s = CHUNK_DELAY_S if pace else 0.0
        self._limits = self._selection.SelectionLimits()  # the defaults equal config.pbtxt's values
        self._cache = load_model_module("embedding_cache").EmbeddingCache(EMBEDDING_CACHE_ENTRIES)

    def format_prompt(self, question: str, sources: list[tuple[str, str]]) -> str:
        """The numbered-sources prompt the generator reads (`proto.prompt`, as the gateway builds it)."""
        return build_prompt(
            question, [PromptSource(n, label, text) for n, (label, text) in enumerate(sources, 1)]
        )

    def generate(self, prompt: str) -> str:
        """The whole answer: the source sentences closest to the question, each with its [n]."""
        selection = self._selection
        plan = selection.plan_answer(self._prompt_format.parse_prompt(prompt), self._limits)
        vectors = self._cache.embed(plan.texts, self.embed)
        chunks: list[str] = selection.finish_answer(plan, vectors, self._limits)
        if self._chunk_delay_s and len(chunks) > 1:  # the model's pace: a pause between chunks
            time.sleep(self._chunk_delay_s * (len(chunks) - 1))  # blocking, as a synchronous model call is
        return "".join(chunks)

    def embed(self, texts: list[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Unit vectors of `texts`, computed in this process."""
        return self._encoder.encode(texts)
