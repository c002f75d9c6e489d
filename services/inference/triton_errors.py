"""How a failure reported by Triton or gRPC becomes one of the errors of `errors.py`.

Triton reports the same trouble in several ways (a gRPC status, a status
inside a stream, a bare message), and a stopping server reports its models
as unknown; the mapping sorts them into unavailable, timeout, bad request,
unknown model or model failure, so callers see one clear error each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.inference.errors import (
    InferenceError,
    InferenceTimeout,
    InvalidInferenceRequest,
    ModelFailed,
    TritonUnavailable,
    UnknownModel,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["triton_error"]

_INVALID_MARKERS = ("invalid request:", "unexpected inference input", "expected", "unable to find")


async def triton_error(
    model: str,
    status: str | None,
    message: str,
    *,
    triton_url: str,
    server_ready: Callable[[], Awaitable[bool]],
) -> InferenceError:
    """Map a gRPC status (None for in-stream errors) and message to one of our errors.

    `server_ready` is asked only when a model is reported unknown, to tell a
    wrong model name from a server shutting down.
    """
    lowered = message.lower()
    if status == "StatusCode.NOT_FOUND" or "unknown model" in lowered:
        # A server shutting down reports its models as unknown: ask whether it is up.
        if await server_ready():
            return UnknownModel(f"Triton does not serve a model named {model!r}")
        return TritonUnavailable(f"Triton at {triton_url} is shutting down or restarting")
    if status == "StatusCode.DEADLINE_EXCEEDED":
        return InferenceTimeout(f"{model}: Triton did not finish within the deadline")
    if status in ("StatusCode.UNAVAILABLE", "StatusCode.CANCELLED"):
        return TritonUnavailable(f"Triton is unreachable at {triton_url}: {message}")
    if status == "StatusCode.INVALID_ARGUMENT" or lowered.startswith(_INVALID_MARKERS):
        return InvalidInferenceRequest(f"{model}: {message}")
    return ModelFailed(f"{model} failed: {message}")
