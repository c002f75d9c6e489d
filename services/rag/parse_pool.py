"""Parse and chunk uploads in spawned worker processes, so the event loop never parses.

A document that takes longer than `parse_timeout_s` is given up (a permanent
failure: it would take as long again); its worker is terminated and the pool
restarted, the only way to stop native code. A worker that dies (out of
memory, a crash in a native parser) is a transient failure: the pool is
restarted and the document retried.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from services.rag.chunking import Chunk, chunk_document, load_token_counter
from services.rag.parsing import ParseLimits, parse_document

if TYPE_CHECKING:
    from proto.documents import IngestDocument
    from services.rag.settings import RagSettings

__all__ = ["ParsePool", "ParseTimeout", "ParseWorkerDied"]


class ParseTimeout(Exception):
    """Parsing took longer than `parse_timeout_s`."""


class ParseWorkerDied(Exception):
    """A parse worker process died: a transient failure (the pool was restarted)."""


def _warm_up() -> None:
    load_token_counter()  # the tokenizer, once per worker process


def _parse_and_chunk(
    data: bytes, *, request: IngestDocument, limits: ParseLimits, max_tokens: int, overlap_tokens: int
) -> list[Chunk]:
    doc = parse_document(data, file_name=request.file_name, content_type=request.content_type, limits=limits)
    return chunk_document(
        doc,
        document_id=request.document_id,
        file_name=request.file_name,
        max_tokens=max_tokens,
        overlap_tokens=overlap_tokens,
    )


class ParsePool:
    """Parse and chunk documents in spawned worker processes, never on the event loop."""

    def __init__(self, settings: RagSettings) -> None:
        self._workers = settings.parse_workers
        self._timeout_s = settings.parse_timeout_s
        self._limits = ParseLimits.from_settings(settings)
        self._max_tokens = settings.chunk_max_tokens
        self._overlap_tokens = settings.chunk_overlap_tokens
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers, mp_context=multiprocessing.get_context("spawn"), initializer=_warm_up
        )

    async def chunks(self, data: bytes, request: IngestDocument) -> list[Chunk]:
        """The document's chunks; parse errors propagate, a timeout or a dead worker raise."""
        executor = self._executor
        call = functools.partial(
            _parse_and_chunk,
            data,
            request=request,
            limits=self._limits,
            max_tokens=self._max_tokens,
            overlap_tokens=self._overlap_tokens,
        )
        try:
            future = asyncio.get_running_loop().run_in_executor(executor, call)
            return await asyncio.wait_for(future, self._timeout_s)
        except TimeoutError:
            self._restart(executor)  # the only way to stop a worker stuck in native code
            raise ParseTimeout(f"parsing took longer than {self._timeout_s:g} s") from None
        except BrokenProcessPool as exc:
            self._restart(executor)
            raise ParseWorkerDied("a parse worker died; the pool was restarted") from exc

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        if broken is not self._executor:
            return  # another caller replaced it already
        processes = getattr(broken, "_processes", None) or {}
        for process in list(processes.values()):
            process.terminate()
        broken.shutdown(wait=False, cancel_futures=True)
        self._executor = self._start()

    def close(self) -> None:
        """Stop the workers (documents being parsed are redelivered later)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
