"""Sentence selection and chunking of the extractive generate model."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from answer_selection import (
    NO_ANSWER,
    Candidate,
    SelectionLimits,
    answer_chunks,
    candidates_of,
    select_sentences,
)
from prompt_format import PromptSource


def _unit(*values: float) -> npt.NDArray[np.float32]:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


QUESTION = _unit(1, 0, 0)
CANDIDATES = [
    Candidate(1, "far away"),
    Candidate(2, "close one"),
    Candidate(2, "closest"),
    Candidate(3, "Closest"),
]
SENTENCES = np.stack([_unit(0, 1, 0), _unit(0.9, 0.3, 0), _unit(1, 0.1, 0), _unit(1, 0.1, 0)])


def test_keeps_best_sentences_in_source_order_without_duplicates() -> None:
    chosen = select_sentences(
        QUESTION, SENTENCES, CANDIDATES, SelectionLimits(min_similarity=0.5, max_gap=0.2)
    )
    assert chosen == [Candidate(2, "close one"), Candidate(2, "closest")]


def test_threshold_rejects_everything_unrelated() -> None:
    limits = SelectionLimits(min_similarity=0.5)
    assert select_sentences(QUESTION, SENTENCES[:1], CANDIDATES[:1], limits) == []
    assert select_sentences(QUESTION, np.zeros((0, 3), dtype=np.float32), [], limits) == []


def test_gap_and_count_limits() -> None:
    narrow = select_sentences(
        QUESTION, SENTENCES, CANDIDATES, SelectionLimits(min_similarity=0.1, max_gap=0.01)
    )
    assert narrow == [Candidate(2, "closest")]
    one = select_sentences(
        QUESTION, SENTENCES, CANDIDATES, SelectionLimits(min_similarity=0.1, max_sentences=1)
    )
    assert one == [Candidate(2, "closest")]


def test_chunks_are_words_with_citations() -> None:
    chunks = answer_chunks([Candidate(2, "Paris is  big."), Candidate(4, "Yes.")], NO_ANSWER)
    assert chunks == ["Paris ", "is ", "big. ", "[2] ", "Yes. ", "[4]"]
    assert "".join(chunks) == "Paris is big. [2] Yes. [4]"


def test_no_selection_streams_the_no_answer_text() -> None:
    assert "".join(answer_chunks([], NO_ANSWER)) == NO_ANSWER


def test_candidates_follow_sources_and_respect_the_cap() -> None:
    sources = [PromptSource(1, "a", "One. Two."), PromptSource(3, "b", "Three.")]
    assert candidates_of(sources, 10) == [Candidate(1, "One."), Candidate(1, "Two."), Candidate(3, "Three.")]
    assert len(candidates_of(sources, 2)) == 2
