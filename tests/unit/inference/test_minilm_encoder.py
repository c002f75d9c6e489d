"""The embed model's encoder: ONNX Runtime gives sentence-transformers' vectors; the export cache."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import minilm_encoder
import numpy as np
import onnx_export
import pytest
from minilm_encoder import (
    OnnxEncoder,
    ensure_onnx_model,
    model_dir,
    onnx_file_name,
    open_encoder,
)

from deploy.triton.local import default_onnx_cache_dir

LONG_TEXT = " ".join(f"word{i % 97} and more" for i in range(700))  # 2,100 words: far past 256 tokens
TEXTS = [
    "The cat sat on the mat.",
    "",
    "   \n\t ",
    "Ünïcödé façade, naïve café: crème brûlée ✓ 🚀",
    "東京は日本の首都です。Москва — столица России. القاهرة عاصمة مصر",
    LONG_TEXT,
    "Paris is the capital of France. " * 12,
    "x",
]


@pytest.fixture(scope="module")
def graph() -> Path:
    """The exported graph in the cache every local Triton shares (exported here if missing)."""
    return ensure_onnx_model(default_onnx_cache_dir())


@pytest.fixture(scope="module")
def reference() -> Any:
    """sentence-transformers itself, the vectors to equal."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir()), device="cpu")


def _expected(reference: Any, texts: list[str]) -> np.ndarray[Any, Any]:
    return np.asarray(reference.encode(texts, normalize_embeddings=True, convert_to_numpy=True))


@pytest.mark.parametrize("batch_size", [1, 3, 8, 64])
def test_onnx_vectors_equal_sentence_transformers(graph: Path, reference: Any, batch_size: int) -> None:
    encoder = OnnxEncoder(graph, model_dir(), batch_size=batch_size, threads=1)
    vectors = encoder.encode(TEXTS)
    expected = _expected(reference, TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    cosines = np.sum(vectors * expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert float(cosines.min()) > 0.9999
    assert float(np.abs(vectors - expected).max()) < 1e-5
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_order_truncation_and_empty_input(graph: Path) -> None:
    encoder = OnnxEncoder(graph, model_dir(), batch_size=3, threads=1)
    vectors = encoder.encode(TEXTS)
    assert np.allclose(encoder.encode(TEXTS[::-1]), vectors[::-1], atol=1e-6)  # input order kept
    # Truncated at 256 tokens like sentence-transformers: words past it change nothing.
    assert np.allclose(
        encoder.encode([LONG_TEXT + " an entirely different ending"])[0], vectors[5], atol=1e-6
    )
    assert encoder.encode([]).shape == (0, 384)


def test_torch_runtime_is_sentence_transformers(reference: Any) -> None:
    encoder = open_encoder("torch", batch_size=8, threads=1)
    assert float(np.abs(encoder.encode(TEXTS) - _expected(reference, TEXTS)).max()) < 1e-6


def test_the_baseline_runs_the_same_encoder(graph: Path) -> None:
    from bench.baseline.generator import open_embed_encoder

    encoder = open_embed_encoder()
    assert isinstance(encoder, OnnxEncoder)  # the very class the Triton model uses, same graph cache
    int8 = ensure_onnx_model(default_onnx_cache_dir(), precision="int8")  # the embed model's precision
    expected = OnnxEncoder(int8, model_dir(), batch_size=1, threads=1).encode(TEXTS)
    assert float(np.abs(encoder.encode(TEXTS) - expected).max()) < 1e-5


def test_unknown_runtime_and_onnx_on_a_gpu_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown runtime 'tensorflow'"):
        open_encoder("tensorflow")
    with pytest.raises(ValueError, match="CPU only"):
        open_encoder("onnxruntime", device="cuda")
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        open_encoder("onnxruntime", precision="int4")
    with pytest.raises(ValueError, match="fp32 only"):
        open_encoder("torch", precision="int8")


def test_int8_vectors_stay_close_to_fp32(graph: Path, reference: Any) -> None:
    encoder = open_encoder("onnxruntime", batch_size=3, threads=1, precision="int8")
    assert isinstance(encoder, OnnxEncoder)
    vectors = encoder.encode(TEXTS)
    cosines = np.sum(vectors * _expected(reference, TEXTS), axis=1)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(cosines.min()) > 0.96 and float(cosines.mean()) > 0.98
    assert float(cosines.min()) < 0.9999  # it is the quantised graph, not fp32 again
    # A text's vector does not depend on the texts encoded with it.
    alone = np.concatenate([encoder.encode([text]) for text in TEXTS])
    assert float(np.abs(alone - vectors).max()) == 0.0
    # Similar texts stay closer than unrelated ones, as with fp32.
    cat, kitten, capital = encoder.encode(["The cat sat on the mat.", "A kitten sits on a rug.", TEXTS[6]])
    assert float(cat @ kitten) > float(cat @ capital) + 0.2


def test_the_int8_graph_is_made_once_from_the_cached_fp32_graph(
    graph: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copy_cache(graph, tmp_path)
    export = _CountingExport(graph)
    monkeypatch.setattr(onnx_export, "export_onnx", export)
    sources: list[Path] = []

    def quantize(source: Path, destination: Path) -> None:
        sources.append(source)
        _REAL_QUANTIZE(source, destination)

    monkeypatch.setattr(onnx_export, "quantize_int8", quantize)
    int8 = ensure_onnx_model(tmp_path, precision="int8")
    assert int8 == tmp_path / onnx_file_name("int8") and int8 != tmp_path / onnx_file_name()
    assert ensure_onnx_model(tmp_path, precision="int8") == int8
    assert sources == [tmp_path / onnx_file_name()] and export.calls == 0
    assert int8.with_suffix(".sha256").is_file()
    assert int8.stat().st_size < graph.stat().st_size * 0.7  # MatMul weights at 1 byte


def _copy_cache(graph: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(graph, target / graph.name)
    shutil.copy(graph.with_suffix(".sha256"), target / graph.with_suffix(".sha256").name)
    return target / graph.name


class _CountingExport:
    """Stands in for the real export: copies a good graph and counts its calls.

    With `callers` set, it first waits until that many callers have reached the export
    lock, so the others are queued behind it while it exports.
    """

    def __init__(self, good: Path, callers: int = 1) -> None:
        self.good, self.calls = good, 0
        self._callers = callers
        self._arrived = 0
        self._arrival = threading.Condition()

    def locked(self, lock_path: Path) -> Any:
        """`onnx_export._locked`, counting the callers that reach it first."""
        with self._arrival:
            self._arrived += 1
            self._arrival.notify_all()
        return _REAL_LOCKED(lock_path)

    def __call__(self, destination: Path, folder: Path | None = None) -> None:
        self.calls += 1
        if self._callers > 1:
            with self._arrival:
                assert self._arrival.wait_for(lambda: self._arrived >= self._callers, timeout=30)
        shutil.copy(self.good, destination)


_REAL_LOCKED = onnx_export._locked
_REAL_QUANTIZE = onnx_export.quantize_int8


def test_an_intact_cache_is_reused(graph: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = _copy_cache(graph, tmp_path)
    export = _CountingExport(graph)
    monkeypatch.setattr(onnx_export, "export_onnx", export)
    assert ensure_onnx_model(tmp_path) == cached
    assert ensure_onnx_model(tmp_path) == cached
    assert export.calls == 0


def test_instances_starting_together_export_once(
    graph: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = _CountingExport(graph, callers=3)
    monkeypatch.setattr(onnx_export, "export_onnx", export)
    monkeypatch.setattr(onnx_export, "_locked", export.locked)
    found: list[Path] = []
    starts = [threading.Thread(target=lambda: found.append(ensure_onnx_model(tmp_path))) for _ in range(3)]
    for start in starts:
        start.start()
    for start in starts:
        start.join()
    assert export.calls == 1
    assert found == [tmp_path / onnx_file_name()] * 3
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed, not left behind


@pytest.mark.parametrize("damage", ["truncated", "garbage", "no checksum"])
def test_a_corrupt_or_partial_cache_is_exported_again(
    graph: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    cached = _copy_cache(graph, tmp_path)
    if damage == "truncated":
        cached.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    elif damage == "garbage":
        cached.write_bytes(b"not an onnx graph")
    else:
        cached.with_suffix(".sha256").unlink()
    export = _CountingExport(graph)
    monkeypatch.setattr(onnx_export, "export_onnx", export)
    assert ensure_onnx_model(tmp_path) == cached
    assert export.calls == 1
    assert cached.read_bytes() == graph.read_bytes()


def test_a_partial_file_is_replaced_by_a_real_export(tmp_path: Path, reference: Any) -> None:
    partial = tmp_path / onnx_file_name()
    partial.write_bytes(b"\x08\x07" * 1000)  # what a killed writer could leave (without the rename)
    partial.with_suffix(".sha256").write_text("0" * 64 + "\n")
    encoder = open_encoder("onnxruntime", batch_size=8, threads=1, cache_dir=tmp_path)
    expected = _expected(reference, TEXTS[:3])
    assert float(np.abs(encoder.encode(TEXTS[:3]) - expected).max()) < 1e-5
    assert partial.stat().st_size > 10_000_000


def test_rows_are_grouped_with_rows_of_similar_length_only() -> None:
    lengths = [10, 200, 9, 12, 180, 11, 150, 8, 10, 10]
    groups = minilm_encoder._similar_length_groups(lengths, 3)
    assert sorted(row for group in groups for row in group) == list(range(len(lengths)))  # each once
    assert all(len(group) <= 3 for group in groups)
    for group in groups:
        longest = lengths[group[0]]
        assert all(lengths[row] <= longest for row in group)
        assert all(lengths[row] >= 0.8 * longest for row in group)  # little padding
    assert [lengths[g[0]] for g in groups] == sorted((lengths[g[0]] for g in groups), reverse=True)
    assert groups[0] == [1, 4]  # 200 and 180 together; 150 is under 0.8 x 200
