"""Chat over SSE and WebSocket through the real system: chunks, sources, request ids, cancellation."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from deploy.cluster import LocalSystem
from tests.integration.conftest import CancelWatch
from tests.integration.pages import serve_pages

pytestmark = pytest.mark.integration

CANCEL_WAIT_S = 10.0


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of a Server-Sent Events response."""
    event, data = "message", []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def ws_url(system: LocalSystem) -> str:
    return system.gateway_url.replace("http://", "ws://") + "/v1/chat/ws"


async def start_then_cancel(ws: websockets.ClientConnection, cited_page: str) -> None:
    """Ask for a long answer on the socket, cancel it after its first chunk, wait for `cancelled`."""
    await ws.send(json.dumps({"prompt": f"Tell me everything about the ice core layers at {cited_page}"}))
    first = json.loads(await asyncio.wait_for(ws.recv(), 30))
    assert first["type"] == "chunk"
    await ws.send(json.dumps({"type": "cancel"}))
    while (message := json.loads(await asyncio.wait_for(ws.recv(), 30)))["type"] == "chunk":
        pass
    assert message["type"] == "cancelled"


async def test_sse_streams_chunks_then_the_answer_with_sources(system: LocalSystem, cited_page: str) -> None:
    body = {"prompt": f"How deep did the rig at {cited_page} reach?", "stream": True}
    async with (
        httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client,
        client.stream("POST", "/v1/chat", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        request_id = response.headers["x-request-id"]
        events = [item async for item in sse_events(response)]
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "answer" and kinds.count("answer") == 1
    assert kinds[:-1] and set(kinds[:-1]) == {"chunk"}
    chunks = [data for kind, data in events if kind == "chunk"]
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    answer = events[-1][1]
    assert "".join(c["text"] for c in chunks) == answer["answer"]
    assert answer["id"] == request_id
    assert answer["sources"], answer["context_errors"]
    assert answer["sources"][0]["url"] == cited_page
    assert "2,400 metres" in answer["answer"]


async def test_request_ids_are_echoed_or_generated(system: LocalSystem) -> None:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        mine = await client.get("/v1/models", headers={"X-Request-ID": "client-id_42"})
        insane = await client.get("/v1/models", headers={"X-Request-ID": "bad id\twith spaces"})
        none = await client.get("/healthz")
        chat = await client.post("/v1/chat", json={"prompt": "hello?"}, headers={"X-Request-ID": "trace-7"})
    assert mine.headers["x-request-id"] == "client-id_42"
    assert insane.headers["x-request-id"] != "bad id\twith spaces"
    assert len(insane.headers["x-request-id"]) == 32
    assert len(none.headers["x-request-id"]) == 32
    assert chat.headers["x-request-id"] == "trace-7"
    assert chat.json()["id"].startswith("trace-7-")  # unique per chat, still carries the client's id


async def test_sse_error_before_streaming_is_an_http_error(system: LocalSystem) -> None:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        response = await client.post("/v1/chat", json={"prompt": "x" * 30_000, "stream": True})
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


async def test_client_leaving_an_sse_stream_cancels_the_generation(
    system: LocalSystem, cited_page: str, cancel_watch: CancelWatch
) -> None:
    request_id = f"sse-leave-{uuid.uuid4().hex[:8]}"
    cancelled = cancel_watch.event(request_id)
    body = {"prompt": f"Tell me everything about the ice core layers at {cited_page}", "stream": True}
    headers = {"X-Request-ID": request_id}
    async with (
        httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client,
        client.stream("POST", "/v1/chat", json=body, headers=headers) as response,
    ):
        async for kind, _ in sse_events(response):
            assert kind == "chunk"
            break  # leave after the first chunk: the connection closes
    await asyncio.wait_for(cancelled.wait(), CANCEL_WAIT_S)
    # The system still answers.
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        assert (await client.post("/v1/chat", json={"prompt": "still there?"})).status_code == 200


async def test_websocket_streams_answers_and_cancels(
    system: LocalSystem, cited_page: str, cancel_watch: CancelWatch
) -> None:
    request_id = f"ws-cancel-{uuid.uuid4().hex[:8]}"
    cancelled = cancel_watch.event(request_id)
    async with websockets.connect(ws_url(system), additional_headers={"X-Request-ID": request_id}) as ws:
        await ws.send(json.dumps({"prompt": f"How deep did the rig at {cited_page} reach?"}))
        messages = []
        while not messages or messages[-1]["type"] == "chunk":
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
        assert messages[-1]["type"] == "answer", messages[-1]
        assert messages[-1]["sources"][0]["url"] == cited_page
        assert "".join(m["text"] for m in messages[:-1]) == messages[-1]["answer"]

        await ws.send(json.dumps({"prompt": "nonsense", "max_tokens": 0}))
        error = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert error["type"] == "error" and error["code"] == "bad_request"

        await start_then_cancel(ws, cited_page)
        await asyncio.wait_for(cancelled.wait(), CANCEL_WAIT_S)


async def test_closing_the_websocket_cancels_the_generation(
    system: LocalSystem, cited_page: str, cancel_watch: CancelWatch
) -> None:
    request_id = f"ws-close-{uuid.uuid4().hex[:8]}"
    cancelled = cancel_watch.event(request_id)
    async with websockets.connect(ws_url(system), additional_headers={"X-Request-ID": request_id}) as ws:
        await ws.send(json.dumps({"prompt": f"Tell me everything about the ice core layers at {cited_page}"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "chunk"
    await asyncio.wait_for(cancelled.wait(), CANCEL_WAIT_S)


async def test_websocket_takes_the_next_chat_sent_right_after_an_answer(system: LocalSystem) -> None:
    """A prompt sent the moment an answer arrives is the next chat, never a 'busy' clash."""
    async with websockets.connect(ws_url(system)) as ws:
        for round_ in range(5):
            await ws.send(json.dumps({"prompt": f"question number {round_}?", "use_web": False}))
            while (message := json.loads(await asyncio.wait_for(ws.recv(), 30)))["type"] == "chunk":
                pass
            assert message["type"] == "answer", message


async def test_each_chat_on_a_websocket_has_its_own_id(system: LocalSystem, cited_page: str) -> None:
    """A chat's id names its token stream: a chat after a cancel must not hear the cancelled one."""
    async with websockets.connect(ws_url(system)) as ws:  # no X-Request-ID: the gateway makes one
        await start_then_cancel(ws, cited_page)
        answers = []
        for _ in range(2):
            await ws.send(json.dumps({"prompt": f"How deep did the rig at {cited_page} reach?"}))
            chunks = []
            while (message := json.loads(await asyncio.wait_for(ws.recv(), 30)))["type"] == "chunk":
                chunks.append(message)
            assert message["type"] == "answer", message
            assert [c["seq"] for c in chunks] == list(range(len(chunks)))
            assert "".join(c["text"] for c in chunks) == message["answer"]
            answers.append(message)
    ids = [answer["id"] for answer in answers]
    assert len(set(ids)) == 2, ids
    assert ids[0].split("-")[0] == ids[1].split("-")[0]  # both still carry the connection's request id


async def test_a_chat_carries_its_history_to_the_model(system: LocalSystem, cited_page: str) -> None:
    question = f"How deep did the rig at {cited_page} reach?"
    history = [{"role": "user", "content": "Where is the rig?"}, {"role": "assistant", "content": "At sea."}]
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        alone = (await client.post("/v1/chat", json={"prompt": question})).json()
        followed = (await client.post("/v1/chat", json={"prompt": question, "history": history})).json()
        refused = await client.post("/v1/chat", json={"prompt": question, "history": [{"role": "tool"}]})
        stopped = await client.post("/v1/chat", json={"prompt": question, "sampling": {"stop": ["[1]"]}})
        too_hot = await client.post("/v1/chat", json={"prompt": question, "sampling": {"temperature": 5}})
    # the stand-in counts its prompt's words: the turns' (4 + 2), the heading (3), the roles (2)
    assert followed["prompt_tokens"] == alone["prompt_tokens"] + 6 + 3 + 2
    assert followed["answer"] == alone["answer"]
    assert (followed["finish_reason"], followed["completion_tokens"]) == (
        "stop",
        len(alone["answer"].split()),
    )
    assert refused.status_code == 400 and "history" in refused.text
    assert stopped.json()["answer"] == alone["answer"][: alone["answer"].index("[1]")]
    assert too_hot.status_code == 400 and "temperature" in too_hot.text


async def test_a_chat_with_many_long_pages_is_answered_within_the_models_prompt_limit(
    system: LocalSystem,
) -> None:
    filler = " ".join(f"Sentence {i} of this report says nothing in particular." for i in range(150))

    def report(n: int) -> str:
        lead = f"The vault of site {n} opens at {n} o'clock." if n == 1 else ""
        return f"<html><body><article><h1>Report {n}</h1><p>{lead} {filler}</p></article></body></html>"

    pages = {f"/report-{n}": report(n) for n in range(1, 11)}  # ten pages of about 8,000 characters
    async with (
        serve_pages(pages) as base,
        httpx.AsyncClient(base_url=system.gateway_url, timeout=60) as client,
    ):
        links = " ".join(f"{base}{path}" for path in pages)
        prompt = f"When does the vault of site 1 open? {links} " + "Please be precise. " * 600
        reply = await client.post("/v1/chat", json={"prompt": prompt, "use_documents": False})
    assert reply.status_code == 200, reply.text  # before: 413 from inference, the prompt was too long
    answer = reply.json()
    assert "1 o'clock" in answer["answer"]
    left_out = [e for e in answer["context_errors"] if "left out" in e]
    assert left_out and len(answer["sources"]) < len(pages)
