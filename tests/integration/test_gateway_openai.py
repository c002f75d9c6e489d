"""The OpenAI-compatible API, driven by the official `openai` client."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from deploy.cluster import LocalSystem

pytestmark = pytest.mark.integration


def client_for(system: LocalSystem) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{system.gateway_url}/v1", api_key="unused", max_retries=0, timeout=30
    )


async def test_models_are_listed(system: LocalSystem) -> None:
    client = client_for(system)
    models = [model.id async for model in client.models.list()]
    assert models == ["extractive-cpu"]
    assert (await client.models.retrieve("extractive-cpu")).id == "extractive-cpu"


async def test_completion_answers_the_last_user_message(system: LocalSystem, cited_page: str) -> None:
    completion = await client_for(system).chat.completions.create(
        model="extractive-cpu",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Something else entirely"},
            {"role": "user", "content": f"How deep did the rig at {cited_page} reach?"},
        ],
    )
    assert completion.object == "chat.completion"
    assert completion.model == "extractive-cpu"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert "2,400 metres" in (choice.message.content or "")
    usage = completion.usage
    assert usage is not None and usage.completion_tokens == len((choice.message.content or "").split())
    # the model's count of the whole prompt: the page's text is in it, not only the question
    assert usage.prompt_tokens > 50
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    sources = (completion.model_extra or {})["sources"]
    assert sources[0]["url"] == cited_page


async def test_earlier_messages_reach_the_models_prompt(system: LocalSystem, cited_page: str) -> None:
    question: dict[str, Any] = {"role": "user", "content": f"How deep did the rig at {cited_page} reach?"}
    earlier: list[dict[str, Any]] = [
        {"role": "system", "content": "Answer in one sentence."},
        {"role": "user", "content": "Where is the rig?"},
        {"role": "assistant", "content": [{"type": "text", "text": "In the North Sea."}]},
    ]
    client = client_for(system)
    alone = await client.chat.completions.create(model="extractive-cpu", messages=[question])
    followed = await client.chat.completions.create(model="extractive-cpu", messages=[*earlier, question])
    assert alone.usage is not None and followed.usage is not None
    # the stand-in counts the words of its prompt: the three messages' (4 each), the block's
    # heading "Conversation so far:" (3) and each message's role (3)
    assert followed.usage.prompt_tokens == alone.usage.prompt_tokens + 3 * 4 + 3 + 3
    assert followed.choices[0].message.content == alone.choices[0].message.content  # it answers the question


async def test_an_answer_cut_by_max_tokens_ends_with_length(system: LocalSystem, cited_page: str) -> None:
    question = f"How deep did the rig at {cited_page} reach?"
    messages: list[Any] = [{"role": "user", "content": question}]
    client = client_for(system)
    completion = await client.chat.completions.create(model="extractive-cpu", messages=messages, max_tokens=2)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 2
    stream = await client.chat.completions.create(
        model="extractive-cpu", messages=messages, max_tokens=2, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(chunk.usage is None for chunk in chunks)  # usage only when stream_options asks for it


async def test_include_usage_ends_a_stream_with_a_usage_chunk(system: LocalSystem, cited_page: str) -> None:
    stream = await client_for(system).chat.completions.create(
        model="extractive-cpu",
        messages=[{"role": "user", "content": f"How deep did the rig at {cited_page} reach?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    *answer, last = chunks
    assert last.choices == [] and last.usage is not None
    text = "".join(chunk.choices[0].delta.content or "" for chunk in answer)
    assert last.usage.completion_tokens == len(text.split())
    assert last.usage.prompt_tokens > 50
    assert answer[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in answer)


async def test_streamed_completion(system: LocalSystem, cited_page: str) -> None:
    stream = await client_for(system).chat.completions.create(
        model="extractive-cpu",
        messages=[{"role": "user", "content": f"How deep did the rig at {cited_page} reach?"}],
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert "2,400 metres" in text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert (chunks[-1].model_extra or {})["sources"][0]["url"] == cited_page
    assert len({chunk.id for chunk in chunks}) == 1


async def test_unknown_model_is_an_openai_style_404(system: LocalSystem) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client_for(system).chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"


async def test_the_stream_ends_with_done(system: LocalSystem) -> None:
    body = {"model": "extractive-cpu", "stream": True, "messages": [{"role": "user", "content": "hi?"}]}
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        response = await client.post("/v1/chat/completions", json=body)
    lines = [line for line in response.text.splitlines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"


async def test_no_user_message_is_a_400(system: LocalSystem) -> None:
    body = {"model": "extractive-cpu", "messages": [{"role": "system", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


async def test_more_than_one_choice_is_refused_not_answered_with_fewer(system: LocalSystem) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client_for(system).chat.completions.create(
            model="extractive-cpu", messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert caught.value.status_code == 400
    assert caught.value.param == "n"
    assert "n: Expected `int` <= 1" in caught.value.message


async def test_a_stop_sequence_ends_the_answer_before_it(system: LocalSystem, cited_page: str) -> None:
    messages: list[Any] = [{"role": "user", "content": f"How deep did the rig at {cited_page} reach?"}]
    client = client_for(system)
    whole = await client.chat.completions.create(model="extractive-cpu", messages=messages)
    text = whole.choices[0].message.content or ""
    assert "[1]" in text
    stopped = await client.chat.completions.create(
        model="extractive-cpu", messages=messages, stop=["[1]", "never there"], temperature=0, seed=7
    )
    assert stopped.choices[0].message.content == text[: text.index("[1]")]
    assert stopped.choices[0].finish_reason == "stop"
    stream = await client.chat.completions.create(
        model="extractive-cpu", messages=messages, stop=text.split()[0], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ""  # stopped at once
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_sampling_parameters_out_of_range_are_a_400_naming_them(system: LocalSystem) -> None:
    client = client_for(system)
    messages: list[Any] = [{"role": "user", "content": "anyone?"}]
    for bad in ({"temperature": 3}, {"top_p": 0}, {"stop": ["a", "b", "c", "d", "e"]}):
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(model="extractive-cpu", messages=messages, **bad)
        assert refused.value.param == next(iter(bad)), bad
