"""A job's results as the gateway reads them from the job-results object store.

A result is read in one direct message read when it fits one chunk (most
texts), instead of a consumer per object. A listing streams every finished
item in order, reading a bounded window of results at once, so a job of a
thousand items is neither read one by one nor all at once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import msgspec
from nats.js.errors import ObjectNotFoundError

from proto.jobs import result_object_name
from proto.subjects import JOB_RESULTS_OBJECTS

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from nats.js import JetStreamContext
    from nats.js.object_store import ObjectStore

    from proto.jobs import JobStatus

__all__ = ["ItemResult", "finished_results", "read_result"]


class ItemResult(msgspec.Struct, frozen=True):
    """One item's outcome in a results listing: its bytes, or why it has none."""

    item: int
    data: bytes | None
    content_type: str = ""
    error: str = ""


async def read_result(
    js: JetStreamContext, results: ObjectStore, job_id: str, item: int
) -> tuple[bytes, str] | None:
    """The item's result and its content type, or None when it has none yet."""
    name = result_object_name(job_id, item)
    try:
        info = await results.get_info(name)
    except ObjectNotFoundError:
        return None
    content_type = ((info.headers or {}).get("Content-Type") or ["application/octet-stream"])[0]
    if info.chunks == 1 and info.nuid:
        # One chunk: one direct read instead of a consumer per object.
        chunk = await js.get_last_msg(f"OBJ_{JOB_RESULTS_OBJECTS}", f"$O.{JOB_RESULTS_OBJECTS}.C.{info.nuid}")
        return bytes(chunk.data or b""), content_type
    result = await results.get(name)
    return bytes(result.data or b""), content_type


async def finished_results(
    status: JobStatus, read: Callable[[int], Awaitable[tuple[bytes, str] | None]], *, window: int
) -> AsyncIterator[ItemResult]:
    """Every finished item of the job in item order: its result (by `read`) or its failure."""
    reasons = {failure.item: failure.reason for failure in status.failures}
    finished = sorted({*status.done, *reasons})
    for start in range(0, len(finished), window):
        batch = finished[start : start + window]
        reads = await asyncio.gather(*(read(n) if n not in reasons else _none() for n in batch))
        for n, found in zip(batch, reads, strict=True):
            if found is not None:
                yield ItemResult(item=n, data=found[0], content_type=found[1])
            else:
                yield ItemResult(item=n, data=None, error=reasons.get(n, "result missing"))


async def _none() -> None:
    return None
