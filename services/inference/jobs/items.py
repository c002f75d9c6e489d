"""Working one job item at Triton: a text answer or a PNG."""

from __future__ import annotations

from contextlib import aclosing

from proto.jobs import JobItem, JobKind
from services.inference.triton_client import TritonModels

__all__ = ["TEXT_TYPE", "PNG_TYPE", "generate_item"]

TEXT_TYPE = "text/plain; charset=utf-8"
PNG_TYPE = "image/png"


async def generate_item(models: TritonModels, item: JobItem, *, timeout_s: float) -> tuple[bytes, str]:
    """The item's result and its content type; raises the errors of `services.inference.errors`."""
    if item.kind == JobKind.IMAGE:
        png = await models.image(
            item.prompt, width=item.options.width, height=item.options.height, timeout_s=timeout_s
        )
        return png, PNG_TYPE
    parts: list[str] = []
    options = item.options
    chunks = models.generate(
        item.prompt, max_tokens=options.max_tokens, timeout_s=timeout_s, sampling=options.sampling
    )
    async with aclosing(chunks) as generated:
        async for chunk in generated:
            parts.append(chunk.text)
    return "".join(parts).encode("utf-8"), TEXT_TYPE
