"""`BusEmbedder` on a real nats-server, answered by a scripted `inference.embed` responder.

The real inference service and Triton answer it in tests/integration/test_rag_ingest.py.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from faststream.nats import NatsBroker
from nats.aio.msg import Msg

from deploy.cluster import NatsServer
from proto.common import ErrorReply, decode, encode
from proto.inference import EmbedReply, EmbedRequest
from proto.subjects import EMBED
from runtime.bus import make_broker
from services.rag.embeddings import BusEmbedder, EmbeddingUnavailable


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[NatsBroker]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    bus = make_broker(server.url, "rag-test")
    await bus.connect()
    try:
        yield bus
    finally:
        await bus.stop()
        server.stop()


async def _answer(broker: NatsBroker, models: Iterator[str]) -> None:
    """Reply to each embed request with one vector per text ([length of the text]) from the next model.

    The responder shares the embedder's connection: the server has its subscription
    before any request (on a second connection, one could arrive first under load).
    """
    client = broker.connection

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


async def test_batches_come_back_in_order_with_their_model(broker: NatsBroker) -> None:
    await _answer(broker, itertools.repeat("model-a"))
    embedded = await _embedder(broker).embed(["a", "bb", "ccc", "dddd", "eeeee"])
    assert embedded.model == "model-a"
    assert embedded.vectors == [[1.0], [2.0], [3.0], [4.0], [5.0]]
    assert (await _embedder(broker).embed([])).vectors == []


async def test_batches_of_two_models_are_refused(broker: NatsBroker) -> None:
    await _answer(broker, itertools.cycle(["model-a", "model-b"]))
    with pytest.raises(EmbeddingUnavailable, match="two models"):
        await _embedder(broker).embed(["a", "bb", "ccc"])


async def test_an_error_reply_is_unavailable_with_its_detail(broker: NatsBroker) -> None:
    await _answer(broker, itertools.repeat("error"))
    with pytest.raises(EmbeddingUnavailable, match="triton is down"):
        await _embedder(broker).embed(["a"])
