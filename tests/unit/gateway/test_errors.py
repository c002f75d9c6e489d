"""The one table from an error code to an HTTP status, and its copy in docs/api.md."""

from __future__ import annotations

import re
from pathlib import Path

from proto.common import ErrorCode, ErrorReply, decode, encode
from services.gateway.errors import HTTP_STATUS, http_status, openai_error_body

_API_DOC = Path(__file__).resolve().parents[3] / "docs" / "api.md"
_ROW = re.compile(r"^\| `(\w+)` \| (\d{3}) \|", re.M)


def test_every_code_has_one_status() -> None:
    assert set(HTTP_STATUS) == set(ErrorCode)


def test_the_documented_table_is_the_table() -> None:
    documented = {code: int(status) for code, status in _ROW.findall(_API_DOC.read_text())}
    assert documented == {code.value: status for code, status in HTTP_STATUS.items()}


def test_a_code_is_its_string_on_the_wire() -> None:
    wire = encode(ErrorReply(code=ErrorCode.NOT_READY, detail="later"))
    assert b'"code":"not_ready"' in wire
    assert decode(wire, ErrorReply).code is ErrorCode.NOT_READY


def test_openai_error_type_follows_the_status() -> None:
    client = openai_error_body(ErrorCode.BAD_REQUEST, "no", status=http_status(ErrorCode.BAD_REQUEST))
    server = openai_error_body(ErrorCode.TIMEOUT, "late", status=http_status(ErrorCode.TIMEOUT))
    assert client["error"]["type"] == "invalid_request_error"
    assert server["error"]["type"] == "server_error"
