"""Gateway errors, and the one table from an `ErrorCode` to an HTTP status and an OpenAI error.

Every error a route raises is a `ServiceError`: one of `runtime.errors`
(`BadRequest`, `NotFound`, `TooLarge`, `Unavailable`, `DeadlineExceeded`), a
`runtime.bus.BusError` from a service it asked, or one of the gateway's own
below; its code alone decides the status, here, for the REST, OpenAI and
WebSocket routes alike.
"""

from __future__ import annotations

from proto.common import ErrorCode
from runtime.errors import ServiceError

__all__ = [
    "HTTP_STATUS",
    "ItemNotReady",
    "RateLimited",
    "UnsupportedDocumentType",
    "error_body",
    "http_status",
    "openai_error_body",
]

# The HTTP status of each error code (OpenAI's error `type` follows from it).
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CANCELLED: 409,
    ErrorCode.NOT_READY: 409,
    ErrorCode.BUSY: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_TYPE: 415,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.TIMEOUT: 504,
}


def http_status(code: ErrorCode) -> int:
    """The HTTP status an error of `code` is answered with."""
    return HTTP_STATUS[code]


def error_body(exc: ServiceError) -> dict[str, str]:
    """The body of an error answer of the gateway's own API (and of a WebSocket error frame)."""
    return {"code": exc.code, "detail": exc.detail}


def openai_error_body(
    code: ErrorCode | str, message: str, *, status: int, param: str | None = None
) -> dict[str, dict[str, str | None]]:
    """OpenAI's error body; `code` may be one of OpenAI's own (`model_not_found`)."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class UnsupportedDocumentType(ServiceError):
    """An uploaded file is not PDF, DOCX, HTML, Markdown or plain text."""

    code = ErrorCode.UNSUPPORTED_TYPE


class RateLimited(ServiceError):
    """The caller's key used up its requests of this minute."""

    code = ErrorCode.RATE_LIMITED

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class ItemNotReady(ServiceError):
    """The job item has no result (yet, or ever: it failed)."""

    code = ErrorCode.NOT_READY
