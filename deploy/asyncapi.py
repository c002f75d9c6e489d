"""Write the AsyncAPI 3.0 document of every service's subjects: `just asyncapi [DIR]`.

Each service's broker is built exactly as the service builds it (same
handlers, same message types) without connecting to NATS. FastStream's own
AsyncAPI generator only describes pydantic models, so the schemas here come
from msgspec (the codec the bus really uses): every subscriber's subject,
queue group, message and reply, so another system can join the bus from
these documents alone.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import typing
from pathlib import Path
from typing import Any

import msgspec
from faststream.nats import NatsBroker

from proto.common import ErrorReply
from proto.documents import IngestDocument
from proto.inference import GenerateResult, TokenChunk
from proto.jobs import JobItem
from proto.subjects import INGEST, INGEST_STREAM, JOB_ITEMS_ALL, JOBS_CONSUMER, JOBS_STREAM
from runtime.bus import make_broker
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.inference.__main__ import build as build_inference
from services.inference.settings import InferenceSettings
from services.rag.__main__ import build as build_rag
from services.rag.handlers import INGEST_DURABLE
from services.rag.settings import RagSettings
from services.scraper.__main__ import build as build_scraper
from services.scraper.settings import ScraperSettings

__all__ = ["build_documents", "main"]


def _gateway_broker() -> NatsBroker:
    broker = make_broker(GatewaySettings().nats_url, "gateway")
    create_app(GatewaySettings(), broker=broker)
    return broker


def _message_types(handler: Any) -> tuple[type | None, Any]:
    """The handler's message type (first parameter) and reply type (return annotation)."""
    function = getattr(handler, "_original_call", handler)
    hints = typing.get_type_hints(function)
    parameters = list(inspect.signature(function).parameters)
    message = hints.get(parameters[0]) if parameters else None
    reply = hints.get("return")
    return message, (None if reply is type(None) else reply)


# What services publish outside request-reply (FastStream knows only subscribers).
_PUBLISHES: dict[str, list[tuple[str, str, list[type]]]] = {
    "inference": [
        (
            "inference.stream",
            "inference.stream.{request_id}",
            [TokenChunk, GenerateResult, ErrorReply],
        )
    ],
}


# The JetStream work queues a service consumes with `runtime.workqueue` (not FastStream subscribers):
# channel name, address, message, and how it is delivered.
_WORK_QUEUES: dict[str, list[tuple[str, str, type, str]]] = {
    "rag": [
        (
            "rag.ingest",
            INGEST,
            IngestDocument,
            f"JetStream work queue: stream {INGEST_STREAM}, durable consumer {INGEST_DURABLE} shared by "
            "the replicas (a publisher gets a PubAck; Nats-Msg-Id deduplicates)",
        )
    ],
    "inference": [
        (
            "jobs.item",
            JOB_ITEMS_ALL,
            JobItem,
            f"JetStream work queue: stream {JOBS_STREAM}, durable consumer {JOBS_CONSUMER} shared by "
            "the replicas (a publisher gets a PubAck; Nats-Msg-Id deduplicates)",
        )
    ],
}


def describe(service: str, broker: NatsBroker) -> dict[str, Any]:
    """One service's AsyncAPI 3.0 document."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    types: list[Any] = [ErrorReply]
    for name, address, message_type, delivery in _WORK_QUEUES.get(service, []):
        payload = {"payload": {"$ref": f"#/components/schemas/{message_type.__name__}"}}
        channels[name] = {"address": address, "messages": {"request": payload}}
        operations[name] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": delivery,
        }
        types.append(message_type)
    for name, address, messages in _PUBLISHES.get(service, []):
        channels[name] = {
            "address": address,
            "messages": {
                m.__name__: {"payload": {"$ref": f"#/components/schemas/{m.__name__}"}} for m in messages
            },
        }
        operations[name] = {"action": "send", "channel": {"$ref": f"#/channels/{name}"}}
        types.extend(messages)
    for subscriber in broker.subscribers:
        queue = getattr(subscriber, "queue", "")
        subject = str(getattr(subscriber, "subject", ""))
        subject = subject.removeprefix("Address('").removesuffix("')")
        message, reply = _message_types(subscriber.calls[0].handler)
        name = subscriber.specification.config.title_ or subject
        channel: dict[str, Any] = {"address": subject, "messages": {}}
        if message is not None:
            channel["messages"]["request"] = {"payload": {"$ref": f"#/components/schemas/{message.__name__}"}}
            types.append(message)
        channels[name] = channel
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": f"queue group {queue!r}" if queue else "every replica receives it",
        }
        if reply is not None:
            types.append(reply)
            operation["reply"] = {"description": f"{_type_name(reply)} or ErrorReply"}
        operations[name] = operation
    _, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    return {
        "asyncapi": "3.0.0",
        "info": {"title": f"{service} service", "version": "0.1.0", "description": __doc__},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": components},
    }


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation))


async def build_documents() -> dict[str, dict[str, Any]]:
    """The AsyncAPI document of each service, by service name."""
    brokers = {
        "gateway": _gateway_broker(),
        "scraper": build_scraper(ScraperSettings()).broker,
        "rag": build_rag(RagSettings()).broker,
        "inference": build_inference(InferenceSettings()).broker,
    }
    return {name: describe(name, broker) for name, broker in brokers.items()}


def main(argv: list[str]) -> int:
    """Write `<dir>/<service>.json` for every service (default dir: docs/asyncapi)."""
    out = Path(argv[0] if argv else "docs/asyncapi")
    out.mkdir(parents=True, exist_ok=True)
    for name, document in asyncio.run(build_documents()).items():
        path = out / f"{name}.json"
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        print(f"{path}: {len(document['channels'])} channels")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
