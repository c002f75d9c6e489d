"""The generate model's config.pbtxt, its code defaults and the benchmark baseline stay in step."""

from __future__ import annotations

from pathlib import Path

from answer_selection import SelectionLimits
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from bench.baseline.generator import CHUNK_DELAY_S, EMBED_BATCH, EMBED_PRECISION, EMBEDDING_CACHE_ENTRIES

_MODELS = Path(__file__).resolve().parents[3] / "deploy" / "triton" / "models"


def _parameters(model: str) -> dict[str, str]:
    text = (_MODELS / model / "config.pbtxt").read_text()
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    return {key: value.string_value for key, value in config.parameters.items()}


def test_selection_defaults_equal_the_config() -> None:
    parameters, limits = _parameters("generate"), SelectionLimits()
    assert float(parameters["min_similarity"]) == limits.min_similarity
    assert float(parameters["max_gap"]) == limits.max_gap
    assert int(parameters["max_answer_sentences"]) == limits.max_sentences
    assert int(parameters["max_candidates"]) == limits.max_candidates
    assert int(parameters["candidate_sentences"]) == limits.candidate_sentences


def test_the_baseline_caches_and_batches_like_the_models() -> None:
    assert int(_parameters("generate")["embedding_cache_entries"]) == EMBEDDING_CACHE_ENTRIES
    assert int(_parameters("embed")["encode_batch_size"]) == EMBED_BATCH
    assert _parameters("embed")["precision"] == EMBED_PRECISION
    assert float(_parameters("generate")["chunk_delay_ms"]) / 1000 == CHUNK_DELAY_S
