"""`/v1/jobs`: batch jobs of texts or images, worked in the background.

`POST /v1/jobs` -> 202 with the job id; `GET /v1/jobs/{id}` its state;
`GET /v1/jobs/{id}/results` text as JSON lines, images as links;
`GET /v1/jobs/{id}/items/{n}` one item's text or PNG; `DELETE /v1/jobs/{id}`
cancels; `WS /v1/jobs/{id}/events` streams progress until the job ends.
A job is its submitter's: with API keys on, another key's requests for it
are answered as for a job that does not exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, WebSocket, delete, get, post, websocket
from litestar.response import Stream

from proto.jobs import ItemFailure, JobKind, JobOptions, JobState, JobStatus, JobSubmitted
from runtime.errors import NotFound
from services.gateway.jobs import JobApiSettings, JobDoor
from services.gateway.protection import tenant_of

__all__ = ["JobBody", "JobView", "router"]

_WS_NO_SUCH_JOB = 4404  # WebSocket close code: the job does not exist


class JobBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A job as clients submit it."""

    kind: JobKind
    items: Annotated[list[str], msgspec.Meta(min_length=1, description="One prompt per item.")]
    options: JobOptions = JobOptions()


class JobView(msgspec.Struct, kw_only=True):
    """A job's state as clients see it."""

    job_id: str
    kind: JobKind
    state: JobState
    total: int
    done: int
    failed: int
    failures: list[ItemFailure]
    reason: str
    created_at: float
    updated_at: float


def router(settings: JobApiSettings) -> Router:
    """The `/jobs` routes; a submission's body may be as large as `max_body_bytes` allows."""
    return Router(
        "/jobs",
        route_handlers=[submit_job, job_status, cancel_job, job_results, job_item, job_events],
        request_max_body_size=settings.max_body_bytes,
    )


def _view(status: JobStatus) -> JobView:
    return JobView(
        job_id=status.job_id,
        kind=status.kind,
        state=status.state,
        total=status.total,
        done=len(status.done),
        failed=len(status.failures),
        failures=list(status.failures),
        reason=status.reason,
        created_at=status.created_at,
        updated_at=status.updated_at,
    )


@post("/", status_code=202, summary="Submit a batch job")
async def submit_job(data: JobBody, job_door: JobDoor, request: Request[Any, Any, Any]) -> JobSubmitted:
    """Queue one item per prompt; poll the job or watch its events for progress."""
    return await job_door.submit(data.kind, data.items, data.options, owner=tenant_of(request).scope)


@get("/{job_id:str}", summary="A job's state")
async def job_status(job_id: str, job_door: JobDoor, request: Request[Any, Any, Any]) -> JobView:
    """State, done/total, and the failed items with their reasons."""
    return _view(await job_door.status(job_id, tenant_of(request).scope))


@delete("/{job_id:str}", status_code=200, summary="Cancel a job")
async def cancel_job(job_id: str, job_door: JobDoor, request: Request[Any, Any, Any]) -> JobView:
    """Drop the job's remaining items; a finished job is left as it is."""
    return _view(await job_door.cancel(job_id, tenant_of(request).scope))


@get("/{job_id:str}/results", summary="A job's results so far")
async def job_results(job_id: str, job_door: JobDoor, request: Request[Any, Any, Any]) -> Response[Any]:
    """Text jobs: JSON lines `{"item", "text"}` or `{"item", "error"}`; image jobs: links."""
    status = await job_door.status(job_id, tenant_of(request).scope)
    if status.kind == JobKind.IMAGE:
        base = str(request.url.path).rstrip("/").removesuffix("/results")
        items = [{"item": n, "url": f"{base}/items/{n}"} for n in status.done]
        body = {"job_id": job_id, "state": status.state, "items": items, "failures": status.failures}
        return Response(body)

    async def lines() -> AsyncIterator[bytes]:
        async for result in job_door.results(status):
            if result.data is not None:
                line: dict[str, Any] = {"item": result.item, "text": result.data.decode("utf-8", "replace")}
            else:
                line = {"item": result.item, "error": result.error}
            yield msgspec.json.encode(line) + b"\n"

    return Stream(lines(), media_type="application/x-ndjson")


@get("/{job_id:str}/items/{item:int}", summary="One item's result")
async def job_item(
    job_id: str, item: int, job_door: JobDoor, request: Request[Any, Any, Any]
) -> Response[bytes]:
    """The item's text or PNG; 409 while it has no result."""
    data, content_type = await job_door.item(job_id, item, tenant_of(request).scope)
    return Response(data, media_type=content_type)


@websocket("/{job_id:str}/events")
async def job_events(socket: WebSocket[Any, Any, Any], job_id: str, job_door: JobDoor) -> None:
    """Send the job's state, then one JSON message per progress event, until it ends."""
    await socket.accept()
    try:
        async for event in job_door.events(job_id, tenant_of(socket).scope):
            await socket.send_json(msgspec.to_builtins(event))
    except NotFound as exc:
        await socket.close(code=_WS_NO_SUCH_JOB, reason=exc.detail[:120])
        return
    await socket.close()
