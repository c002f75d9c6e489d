"""Main-text extraction from HTML pages, shared by the scraper and rag.

Import :func:`extract_main_text` for synchronous use (in a worker process)
and :class:`ExtractorPool` to call it from async code.
"""

from __future__ import annotations

from htmltext.extract import ExtractedPage, ExtractionSettings, extract_main_text
from htmltext.pool import ExtractionError, ExtractorPool

__all__ = [
    "ExtractedPage",
    "ExtractionError",
    "ExtractionSettings",
    "ExtractorPool",
    "extract_main_text",
]
