"""`answer_requests` and `add_health` on the session's real nats-server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from faststream.nats import NatsBroker

from deploy.cluster import NatsServer
from proto.common import ErrorCode, ErrorReply, decode, encode
from proto.health import HealthReply, HealthRequest
from proto.subjects import health_subject
from runtime.bus import make_broker
from runtime.errors import ServiceError
from runtime.service import add_health, answer_requests

REPLY_TIMEOUT_S = 5.0


class _Oracle:
    """Answers health requests, unless told it is not ready."""

    def __init__(self) -> None:
        self.ready = True

    async def answer(self, request: HealthRequest) -> HealthReply:
        if not self.ready:
            raise ServiceError("not yet", code=ErrorCode.NOT_READY)
        return HealthReply(service="oracle", ready=True, detail="a bound method answered")


@pytest.fixture
async def broker(nats_server: NatsServer) -> AsyncIterator[NatsBroker]:
    broker = make_broker(nats_server.url, "oracle")
    yield broker
    await broker.stop()


async def _ask(url: str, subject: str, request: HealthRequest) -> HealthReply | ErrorReply:
    client = await nats.connect(url)
    try:
        reply = await client.request(subject, encode(request), timeout=REPLY_TIMEOUT_S)
    finally:
        await client.close()
    answer: HealthReply | ErrorReply = decode(reply.data, HealthReply | ErrorReply)
    return answer


async def test_a_method_answers_requests_named_after_its_subject(
    broker: NatsBroker, nats_server: NatsServer
) -> None:
    subject = f"test.oracle.{uuid.uuid4().hex[:8]}"
    oracle = _Oracle()
    answer_requests(broker, "oracle", subject, oracle.answer, max_workers=2)
    await broker.start()
    (subscriber,) = broker.subscribers
    assert subscriber.specification.config.title_ == subject
    assert await _ask(nats_server.url, subject, HealthRequest()) == HealthReply(
        service="oracle", ready=True, detail="a bound method answered"
    )
    oracle.ready = False
    refused = await _ask(nats_server.url, subject, HealthRequest())
    assert isinstance(refused, ErrorReply) and refused.code == ErrorCode.NOT_READY


async def test_health_reports_the_checks(broker: NatsBroker, nats_server: NatsServer) -> None:
    service = f"oracle-{uuid.uuid4().hex[:8]}"

    async def checks() -> dict[str, bool]:
        return {"triton": True, "jobs": False}

    add_health(broker, service, checks)
    await broker.start()
    (subscriber,) = broker.subscribers
    assert subscriber.specification.config.title_ == f"{service}.health"
    reply = await _ask(nats_server.url, health_subject(service), HealthRequest())
    assert reply == HealthReply(service=service, ready=False, checks={"triton": True, "jobs": False})
