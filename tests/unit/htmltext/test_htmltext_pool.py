"""ExtractorPool from async code: real worker processes, no mocks."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest

from htmltext import ExtractionError, ExtractorPool

PAGE = (
    '<html lang="fr"><head><title>Le marché</title></head><body><article>'
    "<p>Le marché couvert de la ville rouvrira ses portes samedi matin après "
    "huit mois de travaux de rénovation du toit et des installations électriques.</p>"
    "</article></body></html>"
)


@pytest.fixture
def pool() -> Iterator[ExtractorPool]:
    extractor_pool = ExtractorPool(workers=1)
    yield extractor_pool
    extractor_pool.close()


async def test_pool_extracts_concurrent_pages_from_async_code(pool: ExtractorPool) -> None:
    pages = await asyncio.gather(*(pool.extract(PAGE, url=f"https://example.fr/{i}") for i in range(4)))
    assert {page.title for page in pages} == {"Le marché"}
    assert all(page.language == "fr" and "huit mois" in page.text for page in pages)


async def test_closed_pool_refuses_work(pool: ExtractorPool) -> None:
    pool.close()
    with pytest.raises(ExtractionError, match="closed"):
        await pool.extract(PAGE)
    pool.close()  # a second close is harmless


async def test_dead_worker_fails_its_page_and_the_pool_recovers(pool: ExtractorPool) -> None:
    await pool.extract(PAGE)  # workers are up
    worker_pids = list(pool._executor._processes)
    for pid in worker_pids:
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(ExtractionError, match="died"):
        await pool.extract(PAGE)
    page = await pool.extract(PAGE)
    assert page.language == "fr"


def test_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ExtractorPool(workers=0)
