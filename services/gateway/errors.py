"""Gateway errors, and the one table from an `ErrorCode` to an HTTP status and an OpenAI error.

Every error a route raises is a `ServiceError` (the gateway's own below, or a
`runtime.bus.BusError` from a service it asked); its code alone decides the
status, here, for the REST, OpenAI and WebSocket routes alike.
"""

from __future__ import annotations

from proto.common import ErrorCode
from runtime.errors import ServiceError

__all__ = [
    "HTTP_STATUS",
    "BadInput",
    "ChatTimeout",
    "DocumentNotFound",
    "GatewayError",
    "InvalidJob",
    "ItemNotReady",
    "JobNotFound",
    "PromptTooLarge",
    "RateLimited",
    "TooManyItems",
    "UnsupportedDocumentType",
    "UpstreamUnavailable",
    "UploadTooLarge",
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


class GatewayError(ServiceError):
    """Root of the gateway's own errors."""


class PromptTooLarge(GatewayError):
    """The prompt is over `GATEWAY_MAX_PROMPT_CHARS`."""

    code = ErrorCode.TOO_LARGE


class UpstreamUnavailable(GatewayError):
    """A service the request cannot do without (inference) did not answer."""

    code = ErrorCode.UNAVAILABLE


class ChatTimeout(GatewayError):
    """The answer did not finish within the chat deadline."""

    code = ErrorCode.TIMEOUT


class UploadTooLarge(GatewayError):
    """An uploaded file is over `GATEWAY_MAX_UPLOAD_BYTES`."""

    code = ErrorCode.TOO_LARGE


class UnsupportedDocumentType(GatewayError):
    """An uploaded file is not PDF, DOCX, HTML, Markdown or plain text."""

    code = ErrorCode.UNSUPPORTED_TYPE


class BadInput(GatewayError):
    """Input the gateway cannot take (an empty file, a query over its limit)."""

    code = ErrorCode.BAD_REQUEST


class DocumentNotFound(GatewayError):
    """No document with this id is visible to the caller."""

    code = ErrorCode.NOT_FOUND


class RateLimited(GatewayError):
    """The caller's key used up its requests of this minute."""

    code = ErrorCode.RATE_LIMITED

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class JobNotFound(GatewayError):
    """No job (or no item) by that id."""

    code = ErrorCode.NOT_FOUND


class InvalidJob(GatewayError):
    """The job cannot be accepted as it is."""

    code = ErrorCode.BAD_REQUEST


class TooManyItems(GatewayError):
    """More items, or a longer prompt, than the limits allow."""

    code = ErrorCode.TOO_LARGE


class ItemNotReady(GatewayError):
    """The item has no result (yet, or ever: it failed)."""

    code = ErrorCode.NOT_READY
