"""Fixtures of the gateway's integration tests: a local page to cite, and a NATS listener."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest

from proto.common import decode
from proto.inference import CancelGenerate
from proto.subjects import GENERATE_CANCEL
from tests.integration.pages import serve_pages

_SENTENCES = " ".join(
    f"The drilling rig of Aurora Station reached layer {n} of the ice core, "
    f"which records the climate of the year {1000 + n * 7} in great detail."
    for n in range(1, 40)
)
LONG_PAGE = f"""<!doctype html><html lang="en"><head><title>Aurora Station drilling log</title></head>
<body><article><h1>Aurora Station drilling log</h1>
<p>Aurora Station is a research base on the Ross Ice Shelf. Its drilling rig reached a depth of
2,400 metres in the ice.</p><p>{_SENTENCES}</p></article></body></html>"""


@pytest.fixture(scope="session")
async def cited_page() -> AsyncIterator[str]:
    """The URL of a local page (a long one, so that its answer streams for a while)."""
    async with serve_pages({"/aurora-log": LONG_PAGE}) as base:
        yield f"{base}/aurora-log"


class CancelWatch:
    """The `CancelGenerate` messages seen on the bus, by request id."""

    def __init__(self) -> None:
        self.seen: dict[str, asyncio.Event] = {}

    def event(self, request_id_prefix: str) -> asyncio.Event:
        """Set once a cancel for a request id starting with the prefix arrives."""
        return self.seen.setdefault(request_id_prefix, asyncio.Event())

    def record(self, request_id: str) -> None:
        for prefix, event in self.seen.items():
            if request_id.startswith(prefix):
                event.set()


@pytest.fixture
async def cancel_watch(system: object) -> AsyncIterator[CancelWatch]:
    """Subscribes to `inference.cancel` of the running system."""
    watch = CancelWatch()
    client = await nats.connect(system.nats.url)  # type: ignore[attr-defined]

    async def on_cancel(message: nats.aio.msg.Msg) -> None:
        watch.record(decode(message.data, CancelGenerate).request_id)

    await client.subscribe(GENERATE_CANCEL, cb=on_cancel)
    await client.flush()
    yield watch
    await client.close()
