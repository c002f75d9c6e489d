"""One suite of store behaviours, run against every `PassageStore` implementation.

LanceDB always runs (in a temporary folder). Weaviate runs when
`WEAVIATE_URL` is set (and `WEAVIATE_API_KEY` if the server wants one);
otherwise its tests are skipped and say why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.rag.settings import RagSettings
from services.rag.store import PassageStore, open_store
from services.rag.store.lance import LanceStore
from tests.contract.store_suite import StoreConformanceSuite

WEAVIATE_URL = os.environ.get("WEAVIATE_URL", "")


class TestLanceStore(StoreConformanceSuite):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[PassageStore]:
        store = open_store(RagSettings(data_dir=str(tmp_path / "lance")))
        assert isinstance(store, LanceStore)
        yield store
        await store.close()


@pytest.mark.skipif(not WEAVIATE_URL, reason="WEAVIATE_URL is not set: no Weaviate server to test against")
class TestWeaviateStore(StoreConformanceSuite):
    @pytest.fixture
    async def store(self) -> AsyncIterator[PassageStore]:
        settings = RagSettings(
            weaviate_url=WEAVIATE_URL,
            weaviate_api_key=os.environ.get("WEAVIATE_API_KEY", ""),
            weaviate_grpc_port=int(os.environ.get("WEAVIATE_GRPC_PORT", "50051")),
            weaviate_collection=f"RagConformance{uuid.uuid4().hex[:8]}",
        )
        store = open_store(settings)
        yield store
        await store.drop_all()  # type: ignore[attr-defined]
        await store.close()
