"""``image`` (display name ``placeholder-image``): a CPU stand-in for an image model.

It draws a deterministic picture of the prompt (``prompt_picture.py``) so
that the image path (request, PNG bytes back, storage) runs end to end on a
laptop; production serves a real diffusion model under the same name.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from prompt_picture import render_prompt_picture

__all__ = ["TritonPythonModel"]


def _parameter(config: dict[str, Any], key: str, default: str) -> str:
    """Read a string parameter of config.pbtxt."""
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    return str(value) if value else default


class _BadRequest(Exception):
    """Input the model cannot serve; reported as INVALID_ARG."""


class TritonPythonModel:
    """Prompt in, PNG bytes out."""

    def initialize(self, args: dict[str, str]) -> None:
        """Read the size limits from config.pbtxt."""
        config = json.loads(args["model_config"])
        self._default_size = int(_parameter(config, "default_size", "256"))
        self._min_size = int(_parameter(config, "min_size", "16"))
        self._max_size = int(_parameter(config, "max_size", "1024"))

    def execute(self, requests: list[Any]) -> list[Any]:
        """Render one PNG per request."""
        responses = []
        for request in requests:
            try:
                prompt, width, height = self._read(request)
            except _BadRequest as error:
                failure = pb_utils.TritonError(f"invalid request: {error}", pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=failure))
                continue
            png = render_prompt_picture(prompt, width, height)
            tensor = pb_utils.Tensor("IMAGE", np.array([png], dtype=np.object_))
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
        return responses

    def _read(self, request: Any) -> tuple[str, int, int]:
        raw = pb_utils.get_input_tensor_by_name(request, "PROMPT").as_numpy().reshape(-1)[0]
        try:
            prompt = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError as error:
            raise _BadRequest(f"PROMPT is not UTF-8: {error}") from error
        if not prompt.strip():
            raise _BadRequest("PROMPT is empty")
        return prompt, self._size(request, "WIDTH"), self._size(request, "HEIGHT")

    def _size(self, request: Any, name: str) -> int:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is None:
            return self._default_size
        value = int(tensor.as_numpy().reshape(-1)[0])
        return max(self._min_size, min(self._max_size, value))
