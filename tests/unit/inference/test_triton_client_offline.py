"""TritonModels without a server: input checks, unreachable Triton, error shape."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import msgspec
import pytest

from deploy.cluster import free_port
from runtime.errors import ServiceError
from services.inference.errors import (
    InferenceError,
    InferenceTimeout,
    InvalidInferenceRequest,
    TritonUnavailable,
    UnknownModel,
)
from services.inference.model_io import GenerationChunk
from services.inference.settings import InferenceSettings
from services.inference.triton_client import TritonModels


@pytest.fixture
async def offline() -> AsyncIterator[TritonModels]:
    models = TritonModels(InferenceSettings(triton_grpc_url=f"127.0.0.1:{free_port()}", max_embed_texts=3))
    yield models
    await models.close()


async def test_invalid_requests_fail_before_any_network(offline: TritonModels) -> None:
    with pytest.raises(InvalidInferenceRequest):
        await anext(offline.generate(" \n", max_tokens=5, timeout_s=5))
    with pytest.raises(InvalidInferenceRequest, match="max_tokens"):
        await anext(offline.generate("hi?", max_tokens=0, timeout_s=5))
    with pytest.raises(InvalidInferenceRequest, match="longer than"):
        await anext(offline.generate("x" * 50_000, max_tokens=5, timeout_s=5))
    with pytest.raises(InvalidInferenceRequest, match="1 to 3 texts"):
        await offline.embed(["a", "b", "c", "d"], timeout_s=5)
    with pytest.raises(InvalidInferenceRequest):
        await offline.embed([], timeout_s=5)
    with pytest.raises(InvalidInferenceRequest, match="width and height"):
        await offline.image("a cat", width=4096, height=64, timeout_s=5)


async def test_unreachable_triton_is_one_clear_error_within_the_deadline(offline: TritonModels) -> None:
    assert await offline.ready() == {"generate": False, "embed": False, "image": False}
    started = time.monotonic()
    with pytest.raises(TritonUnavailable, match="unreachable") as caught:
        await offline.embed(["a"], timeout_s=0.8)
    assert time.monotonic() - started < 2.0
    assert caught.value.code == "unavailable"
    with pytest.raises(TritonUnavailable):
        await anext(offline.generate("hi?", max_tokens=5, timeout_s=0.5))
    assert (offline.in_flight, offline.queued) == (0, 0)
    assert offline.model_names == {"generate": "generate", "embed": "embed", "image": "image"}


def test_errors_share_one_root_with_detail_and_code() -> None:
    for kind, code in [
        (TritonUnavailable, "unavailable"),
        (InferenceTimeout, "timeout"),
        (InvalidInferenceRequest, "bad_request"),
        (UnknownModel, "not_found"),
    ]:
        error = kind("why")
        assert isinstance(error, InferenceError)
        assert isinstance(error, ServiceError)  # so the broker replies with its code
        assert (error.detail, error.code, str(error)) == ("why", code, "why")
    assert InferenceError("x", code="custom").code == "custom"


def test_settings_and_chunk_are_plain_structs() -> None:
    settings = msgspec.convert(
        {"triton_grpc_url": "triton:8001", "max_in_flight": "8"}, InferenceSettings, strict=False
    )
    assert (settings.triton_grpc_url, settings.max_in_flight) == ("triton:8001", 8)
    chunk = GenerationChunk(text="a ", final=False)
    assert msgspec.json.decode(msgspec.json.encode(chunk), type=GenerationChunk) == chunk


async def test_an_unreadable_display_name_is_an_error_not_the_config_name(offline: TritonModels) -> None:
    # An embedding reply names its model; rag keeps a collection to one, so no stand-in name.
    with pytest.raises(TritonUnavailable, match="display name of model 'embed'"):
        await offline.display_name("embed")


async def test_the_services_limits_cut_a_callers_longer_deadline() -> None:
    # Triton is down, so each call retries until its deadline: it ends by the service's limit,
    # not by the 60 s the caller asked for.
    limit_s = 0.3
    settings = InferenceSettings(
        triton_grpc_url=f"127.0.0.1:{free_port()}",
        generate_timeout_s=limit_s,
        embed_timeout_s=limit_s,
        image_timeout_s=limit_s,
    )
    models = TritonModels(settings)
    calls = {
        "generate": lambda: anext(models.generate("hi?", max_tokens=5, timeout_s=60)),
        "embed": lambda: models.embed(["a"], timeout_s=60),
        "image": lambda: models.image("a cat", width=64, height=64, timeout_s=60),
    }
    try:
        for role, call in calls.items():
            started = time.monotonic()
            with pytest.raises(TritonUnavailable):
                await asyncio.wait_for(call(), timeout=10)  # a hang fails in 10 s, not 60
            assert time.monotonic() - started < limit_s + 1.5, role  # one retry pause at most
            assert (models.in_flight, models.queued) == (0, 0)
    finally:
        await models.close()
