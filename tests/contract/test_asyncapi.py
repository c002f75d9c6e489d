"""`just asyncapi` documents every subject a service subscribes to, with msgspec schemas."""

from __future__ import annotations

from deploy.asyncapi import build_documents
from proto import subjects


async def test_every_request_subject_is_documented() -> None:
    documents = await build_documents()
    addresses = {
        channel["address"] for document in documents.values() for channel in document["channels"].values()
    }
    expected = {
        subjects.SCRAPE,
        subjects.RETRIEVE,
        subjects.GENERATE,
        subjects.GENERATE_CANCEL,
        subjects.EMBED,
        subjects.IMAGE,
        subjects.CHAT,
        subjects.INGEST,  # work queues a service consumes without FastStream (runtime.workqueue)
        subjects.JOB_ITEMS_ALL,
        *(subjects.health_subject(name) for name in ("gateway", *subjects.SERVICES)),
    }
    assert expected <= addresses
    inference = documents["inference"]
    schemas = inference["components"]["schemas"]
    assert {"GenerateRequest", "GenerateAccepted", "TokenChunk", "GenerateResult", "ErrorReply"} <= set(
        schemas
    )
    assert "prompt" in schemas["GenerateRequest"]["required"]
