"""Errors of the inference service; the broker maps each to an `ErrorReply` with its code."""

from __future__ import annotations

from proto.common import ErrorCode
from runtime.errors import ServiceError

__all__ = [
    "InferenceError",
    "InferenceTimeout",
    "InvalidInferenceRequest",
    "ModelFailed",
    "TritonUnavailable",
    "UnknownModel",
]


class InferenceError(ServiceError):
    """Root of every inference error: a human `detail` and a stable machine `code`."""

    code = ErrorCode.INTERNAL

    def __repr__(self) -> str:
        return f"{type(self).__name__}(detail={self.detail!r}, code={self.code!r})"


class TritonUnavailable(InferenceError):
    """Triton cannot be reached (down, restarting or shutting down); retry later."""

    code = ErrorCode.UNAVAILABLE


class InferenceTimeout(InferenceError):
    """The request's deadline passed (queued or at Triton)."""

    code = ErrorCode.TIMEOUT


class InvalidInferenceRequest(InferenceError):
    """The request itself is wrong (empty or too long prompt, bad sizes or limits)."""

    code = ErrorCode.BAD_REQUEST


class UnknownModel(InferenceError):
    """Triton is up but does not serve the configured model name."""

    code = ErrorCode.NOT_FOUND


class ModelFailed(InferenceError):
    """The model raised an error while serving a valid request."""

    code = ErrorCode.INTERNAL
