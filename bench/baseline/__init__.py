"""Baselines of the benchmarks; the gateway's is the seed chapter's ONE FastAPI process.

`python -m bench.baseline --port P --index DIR` serves `POST /chat` the way
the seed chapter (`/work/shared/seed/`, chapter 5) builds it: URLs found in
the prompt with its regex and fetched with aiohttp (`scraper.py`), the
documents embedded and searched in-process (`documents.py`), and the answer
generated in-process (`generator.py`), all inside an `async def` handler of
one process. It uses the same models and data as the system it is compared
with: all-MiniLM-L6-v2 through the `embed` model's own encoder (ONNX Runtime)
and the extractive generator's own code (both imported by path from the Triton
model folders), the same page extractor and the same document chunks.
"""

from __future__ import annotations

__all__: list[str] = []
