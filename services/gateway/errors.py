"""Gateway errors, each mapped to one HTTP status in `app.py`."""

from __future__ import annotations

from proto.common import ErrorCode
from runtime.errors import ServiceError

__all__ = [
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
]


class GatewayError(ServiceError):
    """Root of the gateway's own errors."""

    status_code = 500


class PromptTooLarge(GatewayError):
    """The prompt is over `GATEWAY_MAX_PROMPT_CHARS`."""

    code = "too_large"
    status_code = 413


class UpstreamUnavailable(GatewayError):
    """A service the request cannot do without (inference) did not answer."""

    code = "unavailable"
    status_code = 503


class ChatTimeout(GatewayError):
    """The answer did not finish within the chat deadline."""

    code = "timeout"
    status_code = 504


class UploadTooLarge(GatewayError):
    """An uploaded file is over `GATEWAY_MAX_UPLOAD_BYTES`."""

    code = ErrorCode.TOO_LARGE
    status_code = 413


class UnsupportedDocumentType(GatewayError):
    """An uploaded file is not PDF, DOCX, HTML, Markdown or plain text."""

    code = "unsupported_type"
    status_code = 415


class BadInput(GatewayError):
    """Input the gateway cannot take (an empty file, a query over its limit)."""

    code = ErrorCode.BAD_REQUEST
    status_code = 400


class DocumentNotFound(GatewayError):
    """No document with this id is visible to the caller."""

    code = ErrorCode.NOT_FOUND
    status_code = 404


class RateLimited(GatewayError):
    """The caller's key used up its requests of this minute."""

    code = "rate_limited"
    status_code = 429

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class JobNotFound(GatewayError):
    """No job (or no item) by that id."""

    code = ErrorCode.NOT_FOUND
    status_code = 404


class InvalidJob(GatewayError):
    """The job cannot be accepted as it is."""

    code = ErrorCode.BAD_REQUEST
    status_code = 400


class TooManyItems(GatewayError):
    """More items, or a longer prompt, than the limits allow."""

    code = ErrorCode.TOO_LARGE
    status_code = 413


class ItemNotReady(GatewayError):
    """The item has no result (yet, or ever: it failed)."""

    code = "not_ready"
    status_code = 409
