"""Chunking: budget, overlap, section boundaries, exact offsets and stable ids."""

from __future__ import annotations

import itertools

import pytest

from services.rag.chunking import (
    Chunk,
    chunk_document,
    chunk_id_for,
    document_text,
    load_token_counter,
)
from services.rag.parsing import DocumentFormat, ParsedDocument, Section

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
]


def _sentence(n: int) -> str:
    return " ".join(WORDS[(n + i) % len(WORDS)] for i in range(9)).capitalize() + f" number {n}."


def _paragraph(first: int, sentences: int) -> str:
    return " ".join(_sentence(n) for n in range(first, first + sentences))


def _doc(*sections: Section) -> ParsedDocument:
    return ParsedDocument(format=DocumentFormat.TEXT, title=None, sections=sections)


LONG_DOC = _doc(
    Section(text="\n\n".join(_paragraph(p * 10, 6) for p in range(8)), page=1, heading_path=("A",)),
    Section(text="Short section on its own.", page=2, heading_path=("A", "B")),
    Section(text=_paragraph(500, 40), page=3, heading_path=("C",)),
)


def _chunks(doc: ParsedDocument = LONG_DOC, max_tokens: int = 60, overlap: int = 15) -> list[Chunk]:
    return chunk_document(
        doc, document_id="doc-1", file_name="f.txt", max_tokens=max_tokens, overlap_tokens=overlap
    )


def test_budget_respected_with_the_real_tokenizer() -> None:
    counter = load_token_counter()
    chunks = _chunks()
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.token_count == counter.count(chunk.text)
        assert chunk.token_count <= 60


def test_offsets_index_the_document_text_exactly() -> None:
    full = document_text(LONG_DOC)
    for chunk in _chunks():
        assert full[chunk.char_start : chunk.char_end] == chunk.text


def test_chunks_never_cross_sections() -> None:
    chunks = _chunks()
    for chunk in chunks:
        section = next(s for s in LONG_DOC.sections if s.heading_path == chunk.heading_path)
        assert chunk.text in section.text
        assert chunk.page == section.page
    short = [c for c in chunks if c.heading_path == ("A", "B")]
    assert [c.text for c in short] == ["Short section on its own."]


def test_consecutive_chunks_of_a_section_overlap() -> None:
    chunks = _chunks()
    pairs = [(a, b) for a, b in itertools.pairwise(chunks) if a.heading_path == b.heading_path]
    assert pairs
    for before, after in pairs:
        assert after.char_start < before.char_end, "no overlap"
        shared = LONG_DOC_TEXT[after.char_start : before.char_end]
        assert load_token_counter().count(shared) <= 15
        assert after.char_end > before.char_end, "no progress"


LONG_DOC_TEXT = document_text(LONG_DOC)


def test_no_overlap_when_zero() -> None:
    chunks = _chunks(overlap=0)
    for before, after in itertools.pairwise(chunks):
        assert after.char_start >= before.char_end


def test_small_paragraphs_are_packed_and_kept_whole() -> None:
    text = "\n\n".join(f"Paragraph {i} is short." for i in range(6))
    chunks = _chunks(_doc(Section(text=text)), max_tokens=200, overlap=40)
    assert [c.text for c in chunks] == [text]


def test_chunks_start_at_sentence_starts_when_paragraphs_are_split() -> None:
    section = LONG_DOC.sections[2]
    starts = {section.text.index(_sentence(n)) for n in range(500, 540)}
    offset = LONG_DOC_TEXT.index(section.text)
    for chunk in _chunks(max_tokens=80, overlap=30):  # a whole sentence fits the overlap
        if chunk.heading_path == ("C",):
            assert chunk.char_start - offset in starts


def test_giant_sentence_and_giant_word_are_cut() -> None:
    sentence = " ".join(WORDS * 30)  # no full stop anywhere
    word = "x" * 3000  # one "word" of hundreds of word pieces
    doc = _doc(Section(text=sentence), Section(text=word))
    chunks = _chunks(doc, max_tokens=50, overlap=10)
    full = document_text(doc)
    assert all(c.token_count <= 50 for c in chunks)
    assert all(full[c.char_start : c.char_end] == c.text for c in chunks)
    assert "".join(c.text for c in chunks if c.heading_path == () and c.text.startswith("x")) == word


def test_indexes_and_ids_are_deterministic() -> None:
    first, second = _chunks(), _chunks()
    assert [c.index for c in first] == list(range(len(first)))
    assert [c.chunk_id for c in first] == [c.chunk_id for c in second]
    assert first[3].chunk_id == chunk_id_for("doc-1", 3)
    assert len({c.chunk_id for c in first}) == len(first)
    assert chunk_id_for("doc-2", 3) != chunk_id_for("doc-1", 3)


def test_metadata_is_carried() -> None:
    chunk = _chunks()[0]
    assert (chunk.document_id, chunk.file_name, chunk.page, chunk.heading_path) == (
        "doc-1",
        "f.txt",
        1,
        ("A",),
    )


def test_bad_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="overlap_tokens"):
        _chunks(max_tokens=10, overlap=10)
