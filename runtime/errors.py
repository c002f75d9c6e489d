"""The root of every service's own exceptions: each maps to one bus error reply."""

from __future__ import annotations

from proto.common import ErrorCode

__all__ = ["ServiceError"]


class ServiceError(Exception):
    """An error a caller should see: `code` for programs, `detail` for people."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, detail: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
