"""The seed chapter's batch jobs as a baseline: FastAPI `BackgroundTasks` in ONE process.

`python -m bench.baseline.jobs_baseline --port P --triton HOST:PORT --results DIR`

The seed (chapter 5) runs long generation work with `BackgroundTasks`: the
handler answers at once and one background task loops over the prompts in
the same process, keeping the job's progress in memory and writing each
output to a file. Nothing is durable but the files: if the process dies, the
job and its remaining items are gone. For a fair comparison it generates
through the same Triton models and client (`TritonModels`) as our worker; only
the job machinery differs.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import BackgroundTasks, FastAPI, HTTPException
from pydantic import BaseModel

from services.inference.settings import InferenceSettings
from services.inference.triton_client import TritonModels

__all__ = ["JobBody", "create_app", "main"]


class JobBody(BaseModel):
    """A batch of text prompts."""

    items: list[str]
    max_tokens: int = 256


def create_app(triton_grpc_url: str, results_dir: Path) -> FastAPI:
    """The app: `POST /jobs` (202), `GET /jobs/{id}`, `GET /health`."""
    state: dict[str, Any] = {"jobs": {}}  # job id -> progress, in memory like the seed's

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["models"] = TritonModels(InferenceSettings(triton_grpc_url=triton_grpc_url))
        yield
        await state["models"].close()

    app = FastAPI(lifespan=lifespan)

    async def run_job(job_id: str, body: JobBody) -> None:
        models: TritonModels = state["models"]
        progress = state["jobs"][job_id]
        folder = results_dir / job_id
        folder.mkdir(parents=True, exist_ok=True)
        for n, prompt in enumerate(body.items):
            parts: list[str] = []
            async with aclosing(models.generate(prompt, max_tokens=body.max_tokens, timeout_s=120)) as chunks:
                async for chunk in chunks:
                    parts.append(chunk.text)
            await asyncio.to_thread((folder / f"{n}.txt").write_text, "".join(parts))
            progress["done"] += 1
        progress["state"] = "completed"

    @app.post("/jobs", status_code=202)
    async def submit(body: JobBody, background_tasks: BackgroundTasks) -> dict[str, str]:
        job_id = uuid.uuid4().hex
        state["jobs"][job_id] = {"state": "running", "done": 0, "total": len(body.items)}
        background_tasks.add_task(run_job, job_id, body)
        return {"job_id": job_id}

    @app.get("/jobs/{job_id}")
    async def status(job_id: str) -> dict[str, Any]:
        if job_id not in state["jobs"]:
            raise HTTPException(status_code=404, detail="no such job")
        progress: dict[str, Any] = state["jobs"][job_id]
        return progress

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": "models" in state}

    return app


def main() -> None:
    """Serve on 127.0.0.1 until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--triton", required=True, help="Triton's gRPC host:port")
    parser.add_argument("--results", type=Path, required=True, help="folder of the output files")
    args = parser.parse_args()
    app = create_app(args.triton, args.results)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
