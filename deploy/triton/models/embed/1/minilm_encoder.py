"""all-MiniLM-L6-v2 sentence vectors on ONNX Runtime (CPU) or on torch (sentence-transformers).

Both runtimes give the same 384-d unit vectors (cosine >= 0.9999, tested; the
int8 ONNX graph, within cosine 0.97 of them): the ONNX graph
(``onnx_export.py``) maps token ids to token vectors, and the
pooling that sentence-transformers configures for this model
(``1_Pooling/config.json``: mean over the attention mask, then L2
normalisation) is done here. Used by the Triton ``embed`` model (``model.py``
beside this file) and by the one-process benchmark baseline
(``bench/baseline``), so both run the same encoder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
from minilm_tokens import INPUTS, Tokens, load_tokenizer, model_dir
from onnx_export import (
    CACHE_DIR_ENV,
    PRECISIONS,
    default_cache_dir,
    ensure_onnx_model,
    export_onnx,
    onnx_file_name,
)

__all__ = [
    "CACHE_DIR_ENV",
    "DIMENSIONS",
    "PRECISIONS",
    "RUNTIMES",
    "Encoder",
    "OnnxEncoder",
    "TorchEncoder",
    "default_cache_dir",
    "ensure_onnx_model",
    "export_onnx",
    "model_dir",
    "onnx_file_name",
    "open_encoder",
]

RUNTIMES = ("onnxruntime", "torch")
DIMENSIONS = 384
_GROUP_LENGTH_RATIO = 0.8  # a group's rows have at least this share of its longest row's tokens

Vectors = npt.NDArray[np.float32]


class Encoder(Protocol):
    """Texts in, float32 unit vectors ``[len(texts), 384]`` out, in input order."""

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Encode ``texts``."""
        ...


def _check_pooling(folder: Path) -> None:
    """Refuse a model whose pooling is not the mean this module computes."""
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
    normalised = any(
        m.get("type", "").endswith("Normalize") for m in json.loads((folder / "modules.json").read_text())
    )
    if modes != {"pooling_mode_mean_tokens"} or not normalised:
        raise ValueError(f"{folder}: pooling {sorted(modes)}, normalised {normalised}; expected mean + norm")


class OnnxEncoder:
    """The exported graph on ONNX Runtime's CPU provider, rows in groups of similar length."""

    def __init__(self, graph: Path, folder: Path, *, batch_size: int, threads: int) -> None:
        import onnxruntime as ort

        _check_pooling(folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per physical core (ONNX Runtime's default)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle pool threads block instead of spinning: the CPU they would burn is the other work's.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self._tokenizer = load_tokenizer(folder)
        self._batch_size = max(1, batch_size)

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors of ``texts`` in input order."""
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        tokens = Tokens.of(self._tokenizer, texts)
        for rows in _similar_length_groups([len(row) for row in tokens.ids], self._batch_size):
            ids, mask, types = tokens.arrays(rows)
            feeds = dict(zip(INPUTS, (ids, mask, types), strict=True))
            (hidden,) = self._session.run(["last_hidden_state"], feeds)
            out[rows] = _mean_pool_normalised(hidden, mask)
        return out


def _similar_length_groups(lengths: Sequence[int], max_rows: int) -> list[list[int]]:
    """Row indices in groups of at most ``max_rows``, longest first, each of similar length.

    Every row of a group is padded to the group's longest, and on a CPU a padded token
    costs as much as a real one: a group closes when the next row is shorter than
    ``_GROUP_LENGTH_RATIO`` of its first. Measured on 320 mixed queries (14 words median,
    one of 595): fixed groups of 8 cost 13.4 ms of CPU a text, one row at a time 4.7,
    these groups 4.4-4.6.
    """
    groups: list[list[int]] = []
    for row in sorted(range(len(lengths)), key=lambda r: -lengths[r]):
        group = groups[-1] if groups else None
        if group and len(group) < max_rows and lengths[row] >= _GROUP_LENGTH_RATIO * lengths[group[0]]:
            group.append(row)
        else:
            groups.append([row])
    return groups


def _mean_pool_normalised(hidden: npt.NDArray[np.float32], mask: npt.NDArray[np.int64]) -> Vectors:
    """Mean of the unmasked token vectors, L2-normalised (sentence-transformers' Pooling + Normalize)."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    mean = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(mean, axis=1, keepdims=True)
    unit: Vectors = (mean / np.clip(norms, 1e-12, None)).astype(np.float32)
    return unit


class TorchEncoder:
    """sentence-transformers on torch: what GPU production runs (``device`` ``cuda``)."""

    def __init__(self, folder: Path, *, batch_size: int, threads: int, device: str) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads > 0:
            torch.set_num_threads(threads)
        self._model = SentenceTransformer(str(folder), device=device)
        self._batch_size = max(1, batch_size)

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors of ``texts`` in input order."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def open_encoder(
    runtime: str = "onnxruntime",
    *,
    batch_size: int = 8,
    threads: int = 1,
    device: str = "cpu",
    cache_dir: Path | None = None,
    precision: str = "fp32",
) -> Encoder:
    """An encoder on ``runtime`` (``onnxruntime``: CPU only; ``torch``: any torch device).

    ``threads`` is the intra-op thread count of one encode call (0: the runtime's default);
    ``cache_dir`` holds the exported graph (default ``default_cache_dir()``); ``precision``
    ``int8`` runs the quantised graph (``onnxruntime`` only).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder = model_dir()
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if runtime == "torch":
        if precision != "fp32":
            raise ValueError(f"runtime 'torch' runs fp32 only (precision {precision!r}): use 'onnxruntime'")
        return TorchEncoder(folder, batch_size=batch_size, threads=threads, device=device)
    if runtime != "onnxruntime":
        raise ValueError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    if device != "cpu":
        raise ValueError(f"runtime 'onnxruntime' runs on the CPU only (device {device!r}): use 'torch'")
    graph = ensure_onnx_model(cache_dir or default_cache_dir(), folder, precision)
    if precision == "int8":
        # One row per pass: dynamic quantisation scales activations per tensor, so in a group a
        # text's vector would depend on its neighbours (cosine down to 0.987 measured); alone it
        # is the same in every batch. It costs less than grouping fp32 (CPU ms per text, one
        # core: queries 3.1 vs 4.2, 200-piece chunks 17.7 vs 31).
        batch_size = 1
    return OnnxEncoder(graph, folder, batch_size=batch_size, threads=threads)


