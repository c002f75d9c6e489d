"""Gateway errors, each mapped to one HTTP status in `app.py`."""

from __future__ import annotations

from runtime.errors import ServiceError

__all__ = ["ChatTimeout", "GatewayError", "PromptTooLarge", "UpstreamUnavailable"]


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
