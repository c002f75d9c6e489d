"""Errors of the inference service; handlers map each ``code`` to a bus error message."""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "InferenceError",
    "InferenceTimeout",
    "InvalidInferenceRequest",
    "ModelFailed",
    "TritonUnavailable",
    "UnknownModel",
]


class InferenceError(Exception):
    """Root of every inference error: a human ``detail`` and a stable machine ``code``."""

    default_code: ClassVar[str] = "inference_error"

    def __init__(self, detail: str, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(detail={self.detail!r}, code={self.code!r})"


class TritonUnavailable(InferenceError):
    """Triton cannot be reached (down, restarting or shutting down); retry later."""

    default_code = "triton_unavailable"


class InferenceTimeout(InferenceError):
    """The request's deadline passed (queued or at Triton)."""

    default_code = "inference_timeout"


class InvalidInferenceRequest(InferenceError):
    """The request itself is wrong (empty or too long prompt, bad sizes or limits)."""

    default_code = "invalid_request"


class UnknownModel(InferenceError):
    """Triton is up but does not serve the configured model name."""

    default_code = "unknown_model"


class ModelFailed(InferenceError):
    """The model raised an error while serving a valid request."""

    default_code = "model_failed"
