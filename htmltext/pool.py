"""A process pool for extraction, so that an event loop never waits on parsing."""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from htmltext.extract import ExtractedPage, ExtractionSettings, extract_main_text
from htmltext.language import detect_language

__all__ = ["DEFAULT_MAX_TASKS_PER_CHILD", "ExtractionError", "ExtractorPool"]

# Workers are replaced after this many pages, which bounds the memory that
# lxml and trafilatura may hold on to; replacing one costs about 0.5 s.
DEFAULT_MAX_TASKS_PER_CHILD = 1000

_WARM_UP_PAGE = "<html><body><article><p>Warm-up page for the extraction worker.</p></article></body></html>"


class ExtractionError(Exception):
    """Extraction did not run: the pool is closed, or its worker process died."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _warm_up() -> None:
    # Pay imports and the language model's load at start-up, not on the first page.
    extract_main_text(_WARM_UP_PAGE)
    detect_language("This sentence loads the language model once per worker process.")


class ExtractorPool:
    """A process pool for extraction so the event loop never waits on parsing.

    Worker processes are spawned (never forked from a process that runs an
    event loop and threads). A worker that dies (out of memory, a crash in
    native code) fails only the pages it was working on, with
    :class:`ExtractionError`; the pool then starts fresh workers.
    """

    def __init__(
        self,
        workers: int,
        *,
        max_tasks_per_child: int | None = DEFAULT_MAX_TASKS_PER_CHILD,
        settings: ExtractionSettings | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._workers = workers
        self._max_tasks_per_child = max_tasks_per_child
        self._settings = settings
        self._closed = False
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_warm_up,
            max_tasks_per_child=self._max_tasks_per_child,
        )

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        # Several callers may see the same broken pool: only the first replaces it.
        if self._executor is broken and not self._closed:
            broken.shutdown(wait=False, cancel_futures=True)
            self._executor = self._start()

    async def extract(self, html: str | bytes, *, url: str | None = None) -> ExtractedPage:
        """Extract a page in a worker process; see :func:`htmltext.extract_main_text`.

        Raises ExtractionError when the pool is closed or the worker died.
        Cancelling the caller drops a page not yet started; one already being
        parsed finishes in its worker and its result is discarded.
        """
        if self._closed:
            raise ExtractionError("the extractor pool is closed")
        executor = self._executor
        call = functools.partial(extract_main_text, html, url=url, settings=self._settings)
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, call)
        except BrokenProcessPool as exc:
            self._restart(executor)
            raise ExtractionError("an extraction worker died; the pool was restarted") from exc
        except RuntimeError as exc:
            # The executor refuses new work once close() has shut it down.
            if self._closed:
                raise ExtractionError("the extractor pool is closed") from exc
            raise

    def close(self) -> None:
        """Stop the workers; pages not yet started are dropped. Safe to call twice."""
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
