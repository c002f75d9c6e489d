"""Every config.pbtxt parses as a Triton ModelConfig; production keeps the local I/O."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

_TRITON = Path(__file__).resolve().parents[3] / "deploy" / "triton"
_MODELS = ["generate", "embed", "image"]


def _config(tree: str, model: str) -> model_config_pb2.ModelConfig:
    text = (_TRITON / tree / model / "config.pbtxt").read_text()
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def _io(config: model_config_pb2.ModelConfig) -> list[tuple[str, int, list[int], bool]]:
    inputs = [(i.name, i.data_type, list(i.dims), i.optional) for i in config.input]
    return inputs + [(o.name, o.data_type, list(o.dims), False) for o in config.output]


@pytest.mark.parametrize("tree", ["models", "production"])
@pytest.mark.parametrize("model", _MODELS)
def test_config_parses_and_names_its_folder(tree: str, model: str) -> None:
    config = _config(tree, model)
    assert config.name == model
    assert config.parameters["display_name"].string_value
    assert (_TRITON / tree / model / "1").is_dir()


@pytest.mark.parametrize("model", _MODELS)
def test_production_keeps_the_local_inputs_and_outputs(model: str) -> None:
    assert _io(_config("production", model)) == _io(_config("models", model))


def test_generate_is_decoupled_and_production_runs_on_vllm() -> None:
    assert _config("models", "generate").model_transaction_policy.decoupled
    production = _config("production", "generate")
    assert production.backend == "vllm" and production.model_transaction_policy.decoupled
    engine = json.loads((_TRITON / "production" / "generate" / "1" / "model.json").read_text())
    assert engine["model"].startswith("meta-llama/")


def test_local_display_names_say_what_runs() -> None:
    names = {m: _config("models", m).parameters["display_name"].string_value for m in _MODELS}
    assert names == {
        "generate": "extractive-cpu",
        "embed": "all-MiniLM-L6-v2-int8",
        "image": "placeholder-image",
    }


@pytest.mark.parametrize("tree", ["models", "production"])
def test_the_embed_display_name_says_its_precision(tree: str) -> None:
    parameters = _config(tree, "embed").parameters
    precision = parameters["precision"].string_value if "precision" in parameters else "fp32"
    assert parameters["display_name"].string_value.endswith("-int8") == (precision == "int8")
    assert _config("models", "embed").dynamic_batching.max_queue_delay_microseconds == 2000
    assert _config("models", "embed").max_batch_size == 64
    assert (
        _config("production", "embed").instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    )
