"""The base of every bus message, the error reply and the codec."""

from __future__ import annotations

import enum
from typing import Any, TypeVar

import msgspec

__all__ = [
    "SCHEMA_VERSION",
    "ErrorCode",
    "ErrorReply",
    "Message",
    "MessageDecodeError",
    "decode",
    "encode",
]

SCHEMA_VERSION = 1

T = TypeVar("T")


class Message(msgspec.Struct, kw_only=True, tag_field="type"):
    """Base of every bus message.

    Every message carries its `type` tag and a `schema_version`; unknown fields
    are ignored when decoding, so a newer sender can add fields without
    breaking an older receiver and services can be upgraded one at a time.
    """

    schema_version: int = SCHEMA_VERSION


class ErrorCode(enum.StrEnum):
    """Machine-readable error codes of every service and of the gateway's API (strings on the wire).

    The gateway answers each with one HTTP status (`services/gateway/errors.py`).
    """

    BAD_REQUEST = "bad_request"  # the message could not be decoded or failed validation
    TOO_LARGE = "too_large"  # an input is over a configured limit
    NOT_FOUND = "not_found"  # the named thing (document, model, job) does not exist
    UNAVAILABLE = "unavailable"  # a dependency (Triton, the store, a service on the bus) is down
    TIMEOUT = "timeout"  # the deadline passed before the work finished
    CANCELLED = "cancelled"  # the caller cancelled the work
    INTERNAL = "internal"  # a bug: logged with its traceback by the service
    UNSUPPORTED_TYPE = "unsupported_type"  # an uploaded file of a type no parser reads
    RATE_LIMITED = "rate_limited"  # the caller's key used up its requests of this minute
    NOT_READY = "not_ready"  # the thing exists but has no result (yet, or ever: it failed)
    BUSY = "busy"  # one chat at a time on a WebSocket: this one came while another streamed


class ErrorReply(Message, tag="error"):
    """The reply to any request that failed; `detail` is meant for people."""

    code: ErrorCode
    detail: str
    service: str = ""


def encode(message: Message) -> bytes:
    """Encode a message as JSON bytes."""
    return msgspec.json.encode(message)


class MessageDecodeError(ValueError):
    """A payload that is not a valid message of the expected type."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def decode(data: bytes, message_type: type[T] | Any) -> T:
    """Decode JSON bytes into `message_type` (a Struct or a union of tagged Structs)."""
    try:
        result: T = msgspec.json.decode(data, type=message_type)
    except msgspec.ValidationError as exc:
        raise MessageDecodeError(f"invalid message: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise MessageDecodeError(f"malformed JSON: {exc}") from exc
    return result
