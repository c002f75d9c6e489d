"""The baseline FastAPI app: the seed's `/generate/text` with web pages and documents, in one process.

Everything runs the seed's way (examples 5-6 and 5-7): an `async def`
handler, the page content injected by a dependency, and the model calls
(query embedding, generation) made directly in the handler, on the event
loop, as `generate_text(models["text"], prompt, ...)` is in the seed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI
from pydantic import BaseModel

from bench.baseline.documents import DocumentIndex
from bench.baseline.generator import ExtractiveGenerator, open_embed_encoder
from bench.baseline.scraper import extract_urls, fetch_all

__all__ = ["BaselineSettings", "ChatBody", "create_app"]


@dataclass(frozen=True)
class BaselineSettings:
    """The same context limits as the gateway's defaults (`GatewaySettings`)."""

    index_dir: Path
    retrieve_k: int = 4  # passages put in the prompt
    max_source_chars: int = 4_000  # text of one page or passage put in the prompt
    pace: bool = True  # the generator takes its streaming model's decoding time (see generator.py)


class ChatBody(BaseModel):
    """The request: a prompt whose URLs are read."""

    prompt: str


async def get_urls_content(body: Annotated[ChatBody, Body()]) -> list[tuple[str, str | None, str]]:
    """The seed's dependency: the pages of the URLs in the prompt (none on failure)."""
    urls = extract_urls(body.prompt)
    if not urls:
        return []
    try:
        return await fetch_all(urls)
    except Exception:  # the seed logs and goes on without the pages
        return []


def create_app(settings: BaselineSettings) -> FastAPI:
    """The app; the embedding model and the document index load at start-up.

    The encoder is the `embed` Triton model's own (`minilm_encoder.py`, ONNX Runtime on
    CPU), so the benchmark compares architectures, not runtimes.
    """
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["generator"] = ExtractiveGenerator(open_embed_encoder(), pace=settings.pace)
        state["index"] = DocumentIndex.load(settings.index_dir)
        yield
        state.clear()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": "generator" in state}

    @app.post("/chat")
    async def chat(
        body: Annotated[ChatBody, Body()],
        urls_content: Annotated[list[tuple[str, str | None, str]], Depends(get_urls_content)],
    ) -> dict[str, Any]:
        generator: ExtractiveGenerator = state["generator"]
        index: DocumentIndex = state["index"]
        limit = settings.max_source_chars
        sources = [(url, _clip(f"{title or ''}\n{text}", limit)) for url, title, text in urls_content]
        query = generator.embed([body.prompt])[0]
        passages = index.search(query, settings.retrieve_k)
        sources += [(p.file_name, _clip(p.text, limit)) for p in passages]
        answer = generator.generate(generator.format_prompt(body.prompt, sources))
        cited = [{"n": n, "label": label} for n, (label, _) in enumerate(sources, start=1)]
        return {"answer": answer, "sources": cited}

    return app


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0]
