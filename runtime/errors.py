"""The root of every service's own exceptions, and one error for each common code.

The broker answers any `ServiceError` with an `ErrorReply` of its code, and
the gateway with that code's HTTP status. A service raises these as they are
where the code says all there is to say, and subclasses them (or
`ServiceError`) where its callers must tell one failure from another.
"""

from __future__ import annotations

from proto.common import ErrorCode

__all__ = ["BadRequest", "DeadlineExceeded", "NotFound", "ServiceError", "TooLarge", "Unavailable"]


class ServiceError(Exception):
    """An error a caller should see: `code` for programs, `detail` for people."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, detail: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class BadRequest(ServiceError):
    """The input cannot be used as it is (the detail says why)."""

    code = ErrorCode.BAD_REQUEST


class NotFound(ServiceError):
    """The named thing does not exist, or is not the caller's to see."""

    code = ErrorCode.NOT_FOUND


class TooLarge(ServiceError):
    """An input is over a configured limit (the detail names it)."""

    code = ErrorCode.TOO_LARGE


class Unavailable(ServiceError):
    """A dependency the work cannot do without did not answer; try again later."""

    code = ErrorCode.UNAVAILABLE


class DeadlineExceeded(ServiceError):
    """The deadline passed before the work finished."""

    code = ErrorCode.TIMEOUT
