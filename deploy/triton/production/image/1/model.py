"""``image`` in production: SDXL-Turbo via diffusers on a GPU (not run on the laptop).

Same inputs and outputs as the CPU placeholder: PROMPT in, PNG bytes out.
Needs ``diffusers``, ``transformers`` and the weights baked into the image
(``HF_HUB_OFFLINE=1`` at run time).
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

__all__ = ["TritonPythonModel"]


def _parameter(config: dict[str, Any], key: str, default: str) -> str:
    """Read a string parameter of config.pbtxt."""
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    return str(value) if value else default


class TritonPythonModel:
    """Prompt in, PNG bytes out, on the instance's GPU."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load the pipeline in fp16 on this instance's GPU."""
        import torch
        from diffusers import AutoPipelineForText2Image

        config = json.loads(args["model_config"])
        self._steps = int(_parameter(config, "num_inference_steps", "2"))
        self._default = int(_parameter(config, "default_size", "512"))
        self._min = int(_parameter(config, "min_size", "256"))
        self._max = int(_parameter(config, "max_size", "1024"))
        device = f"cuda:{args.get('model_instance_device_id', '0')}"
        self._pipe = AutoPipelineForText2Image.from_pretrained(
            _parameter(config, "model_id", "stabilityai/sdxl-turbo"), torch_dtype=torch.float16, variant="fp16"
        ).to(device)

    def execute(self, requests: list[Any]) -> list[Any]:
        """One PNG per request."""
        responses = []
        for request in requests:
            raw = pb_utils.get_input_tensor_by_name(request, "PROMPT").as_numpy().reshape(-1)[0]
            prompt = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            if not prompt.strip():
                failure = pb_utils.TritonError("invalid request: PROMPT is empty", pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=failure))
                continue
            picture = self._pipe(
                prompt=prompt,
                num_inference_steps=self._steps,
                guidance_scale=0.0,
                width=self._size(request, "WIDTH"),
                height=self._size(request, "HEIGHT"),
            ).images[0]
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            tensor = pb_utils.Tensor("IMAGE", np.array([buffer.getvalue()], dtype=np.object_))
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
        return responses

    def _size(self, request: Any, name: str) -> int:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        value = self._default if tensor is None else int(tensor.as_numpy().reshape(-1)[0])
        # SDXL works in multiples of 8 pixels.
        return max(self._min, min(self._max, value)) // 8 * 8
