"""Errors of the rag service, one root class with a human-readable `detail`.

The handlers map them to bus error messages in one place: parse and type
errors are the uploader's fault (the document is rejected, not retried);
store errors are ours (the ingest message is retried).
"""

from __future__ import annotations

__all__ = [
    "DocumentParseError",
    "InvalidCollectionName",
    "RagError",
    "StoreError",
    "UnsupportedDocumentType",
]


class RagError(Exception):
    """Root of every error the rag service raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class DocumentParseError(RagError):
    """A document could not be read: encrypted, corrupt, empty or too large."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedDocumentType(RagError):
    """Neither the content type, the file name nor the first bytes name a format we read."""


class StoreError(RagError):
    """The passage store failed (I/O, server, schema): the operation may be retried."""


class InvalidCollectionName(RagError, ValueError):
    """A collection name is not a safe identifier (letters, digits, `_`, `-`; 1-64 chars)."""
