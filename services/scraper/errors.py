"""Errors of page fetching: one root class, one subclass per machine-readable code."""

from __future__ import annotations

__all__ = [
    "BodyTooLarge",
    "ConnectFailed",
    "DnsFailed",
    "FetchError",
    "FetchRefused",
    "FetchTimeout",
    "HttpStatusError",
    "InvalidUrl",
    "RobotsDisallowed",
    "TooManyRedirects",
    "UnsupportedContentType",
]


class FetchError(Exception):
    """A page could not be fetched; ``code`` is short and stable, ``reason`` is for people."""

    code: str = "fetch_failed"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class FetchRefused(FetchError):
    """The SSRF guard refused the destination; nothing was sent to it."""

    code = "refused"


class InvalidUrl(FetchError):
    """The URL is malformed or not http(s)."""

    code = "invalid_url"


class FetchTimeout(FetchError):
    """The deadline (the caller's or ``total_timeout_s``) or a read/connect timeout passed."""

    code = "timeout"


class BodyTooLarge(FetchError):
    """The body is longer than ``max_body_bytes``; reading was abandoned."""

    code = "too_large"


class UnsupportedContentType(FetchError):
    """The response is not HTML, XHTML or plain text."""

    code = "unsupported_type"


class HttpStatusError(FetchError):
    """The server answered with an error status (after any retries)."""

    code = "http_status"

    def __init__(self, url: str, reason: str, *, status: int) -> None:
        super().__init__(url, reason)
        self.status = status


class RobotsDisallowed(FetchError):
    """The site's robots.txt forbids our user agent to fetch this URL."""

    code = "robots"


class DnsFailed(FetchError):
    """The host name does not resolve."""

    code = "dns"


class ConnectFailed(FetchError):
    """No connection could be made (refused, unreachable, TLS failure, reset)."""

    code = "connect"


class TooManyRedirects(FetchError):
    """More than ``max_redirects`` redirects, or a redirect loop."""

    code = "too_many_redirects"
