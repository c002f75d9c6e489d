"""Every bus message survives encode/decode, carries its version and ignores unknown fields."""

from __future__ import annotations

import json

import msgspec
import pytest

from proto import subjects
from proto.chat import ChatAnswer, ChatRequest, Source
from proto.common import SCHEMA_VERSION, ErrorReply, Message, MessageDecodeError, decode, encode
from proto.context import (
    Passage,
    RetrieveReply,
    RetrieveRequest,
    ScrapedPage,
    ScrapeReply,
    ScrapeRequest,
    UrlError,
)
from proto.documents import (
    CollectionVectors,
    DeleteDocument,
    DocumentDeleted,
    DocumentState,
    DocumentStatus,
    IngestDocument,
)
from proto.health import HealthReply, HealthRequest
from proto.inference import (
    CancelGenerate,
    EmbedReply,
    EmbedRequest,
    GenerateAccepted,
    GenerateRequest,
    GenerateResult,
    ImageReply,
    ImageRequest,
    TokenChunk,
)

EXAMPLES: list[Message] = [
    ChatRequest(prompt="What is in https://example.com ?", collection="team-a"),
    ChatAnswer(
        id="c1",
        answer="It says hello [1].",
        sources=[Source(n=1, kind="url", label="https://example.com", url="https://example.com")],
        model="extractive-cpu",
    ),
    ScrapeRequest(prompt="read https://example.com", timeout_ms=1500),
    ScrapeReply(
        pages=[ScrapedPage(url="https://a.test", final_url="https://a.test/", text="body", title="A")],
        errors=[UrlError(url="http://127.0.0.1", code="refused", detail="loopback address")],
    ),
    RetrieveRequest(query="solar costs", collection="c", k=3, document_ids=["d1"]),
    RetrieveReply(
        passages=[Passage(document_id="d1", file_name="a.pdf", chunk_index=0, text="t", score=0.5, page=2)]
    ),
    GenerateRequest(request_id="r1", prompt="p", stream_subject=subjects.stream_subject("r1")),
    GenerateAccepted(request_id="r1", model="extractive-cpu"),
    TokenChunk(request_id="r1", seq=0, text="Hello "),
    GenerateResult(request_id="r1", answer="Hello", tokens=1, model="m", first_token_ms=1.0, total_ms=2.0),
    CancelGenerate(request_id="r1"),
    EmbedRequest(texts=["a", "b"]),
    EmbedReply(vectors=[[0.1, 0.2]], model="all-MiniLM-L6-v2", dimensions=2),
    ImageRequest(prompt="a cat", width=64, height=64),
    ImageReply(png=b"\x89PNG\r\n", model="placeholder-image"),
    IngestDocument(
        document_id="d1",
        collection="c",
        file_name="a.pdf",
        content_type="application/pdf",
        object_name="d1",
        sha256="ab" * 32,
        size=10,
    ),
    DocumentStatus(
        document_id="d1",
        collection="c",
        file_name="a.pdf",
        content_type="application/pdf",
        size=10,
        sha256="ab" * 32,
        state=DocumentState.FAILED,
        reason="encrypted PDF",
    ),
    DeleteDocument(document_id="d1", collection="c"),
    DocumentDeleted(document_id="d1", chunks_removed=3),
    CollectionVectors(collection="c", model="all-MiniLM-L6-v2-int8", dimensions=384),
    HealthRequest(),
    HealthReply(service="inference", ready=True, checks={"triton": True}),
    ErrorReply(code="bad_request", detail="prompt is empty", service="inference"),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(message: Message) -> None:
    data = encode(message)
    assert decode(data, type(message)) == message
    wire = json.loads(data)
    assert wire["schema_version"] == SCHEMA_VERSION
    assert wire["type"]  # every message names its type on the wire


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_unknown_fields_are_tolerated(message: Message) -> None:
    wire = json.loads(encode(message))
    wire["added_in_a_later_version"] = {"anything": [1, 2]}
    assert decode(json.dumps(wire).encode(), type(message)) == message


def test_union_decodes_by_type_tag() -> None:
    stream_event = TokenChunk | GenerateResult | ErrorReply
    assert isinstance(decode(encode(TokenChunk(request_id="r", seq=3, text="x")), stream_event), TokenChunk)
    error = ErrorReply(code="timeout", detail="too slow")
    assert decode(encode(error), stream_event) == error


def test_wrong_type_is_a_clear_error() -> None:
    with pytest.raises(MessageDecodeError, match=r"prompt"):
        decode(b'{"type": "chat.request", "prompt": 12}', ChatRequest)
    with pytest.raises(MessageDecodeError, match="malformed JSON"):
        decode(b"{not json", ChatRequest)
    with pytest.raises(MessageDecodeError):
        decode(encode(ChatRequest(prompt="x")), ScrapeRequest)


def test_subjects_are_defined_once() -> None:
    names = [v for k, v in vars(subjects).items() if k.isupper() and isinstance(v, str)]
    # SEARCH is documented as an alias of RETRIEVE; every other name is unique.
    assert len([n for n in names if n != subjects.RETRIEVE]) == len(set(names) - {subjects.RETRIEVE})
    assert subjects.stream_subject("abc") == "inference.stream.abc"
    assert subjects.health_subject("rag") == "health.rag"


def test_every_message_type_has_a_distinct_tag() -> None:
    tags = [msgspec.inspect.type_info(type(m)).tag for m in EXAMPLES]  # type: ignore[attr-defined]
    assert len(tags) == len(set(tags))
