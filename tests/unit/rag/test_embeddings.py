"""`BusEmbedder` on a real nats-server, answered by a scripted `inference.embed` responder.

The real inference service and Triton answer it in tests/integration/test_rag_ingest.py.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.aio.msg import Msg

from deploy.cluster import NatsServer
from proto.common import ErrorReply, decode, encode
from proto.inference import EmbedReply, EmbedRequest
from proto.subjects import EMBED
from runtime.bus import make_broker
from services.rag.embeddings import BusEmbedder, EmbeddingUnavailable


@dataclass
class Bus:
    broker: NatsBroker  # what BusEmbedder sends on
    responder: Client  # plays the inference service


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[Bus]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    broker = make_broker(server.url, "rag-test")
    await broker.connect()
    responder = await nats.connect(server.url)
    try:
        yield Bus(broker, responder)
    finally:
        await responder.close()
        await broker.stop()
        server.stop()


async def _answer(client: Client, models: Iterator[str]) -> None:
    """Reply to each embed request with one vector per text ([length of the text]) from the next model."""

    async def reply(message: Msg) -> None:
        request = decode(message.data, EmbedRequest)
        model = next(models)
        answer = (
            ErrorReply(code="unavailable", detail="triton is down")
            if model == "error"
            else EmbedReply(vectors=[[float(len(t))] for t in request.texts], model=model, dimensions=1)
        )
        await message.respond(encode(answer))

    await client.subscribe(EMBED, cb=reply)
    await client.flush()


def _embedder(broker: NatsBroker) -> BusEmbedder:
    return BusEmbedder(broker, batch_size=2, timeout_s=5, max_concurrent_batches=2)


async def test_batches_come_back_in_order_with_their_model(bus: Bus) -> None:
    await _answer(bus.responder, itertools.repeat("model-a"))
    embedded = await _embedder(bus.broker).embed(["a", "bb", "ccc", "dddd", "eeeee"])
    assert embedded.model == "model-a"
    assert embedded.vectors == [[1.0], [2.0], [3.0], [4.0], [5.0]]
    assert (await _embedder(bus.broker).embed([])).vectors == []


async def test_batches_of_two_models_are_refused(bus: Bus) -> None:
    await _answer(bus.responder, itertools.cycle(["model-a", "model-b"]))
    with pytest.raises(EmbeddingUnavailable, match="two models"):
        await _embedder(bus.broker).embed(["a", "bb", "ccc"])


async def test_an_error_reply_is_unavailable_with_its_detail(bus: Bus) -> None:
    await _answer(bus.responder, itertools.repeat("error"))
    with pytest.raises(EmbeddingUnavailable, match="triton is down"):
        await _embedder(bus.broker).embed(["a"])
