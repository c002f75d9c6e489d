"""Sentence selection and chunking of the extractive generate model."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from answer_selection import (
    NO_ANSWER,
    NO_SOURCES,
    Candidate,
    SelectionLimits,
    answer_chunks,
    candidates_of,
    finish_answer,
    plan_answer,
    select_sentences,
)
from prompt_format import ParsedPrompt, PromptSource


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


def _embed_by_keyword(texts: list[str]) -> npt.NDArray[np.float32]:
    """Unit vectors whose direction says which keyword a text holds (a tiny embedder for the tests)."""
    axes = {"capital": _unit(1, 0, 0), "museum": _unit(0, 1, 0)}
    fallback = _unit(0, 0, 1)
    return np.stack([next((v for k, v in axes.items() if k in t.lower()), fallback) for t in texts])


def test_plan_embeds_the_question_and_only_the_shortlisted_sentences() -> None:
    filler = " ".join(f"Filler sentence number {n} about nothing." for n in range(30))
    parsed = ParsedPrompt(
        "What is the capital of France?",
        (PromptSource(1, "a", filler), PromptSource(2, "b", "Paris is the capital of France.")),
    )
    plan = plan_answer(parsed, SelectionLimits(candidate_sentences=4))
    assert plan.texts[0] == "What is the capital of France?"
    assert len(plan.candidates) == 4 and Candidate(2, "Paris is the capital of France.") in plan.candidates
    chunks = finish_answer(plan, _embed_by_keyword(plan.texts), SelectionLimits())
    assert "".join(chunks) == "Paris is the capital of France. [2]"


def test_plan_without_sentences_answers_without_embedding() -> None:
    nothing = np.zeros((0, 3), dtype=np.float32)
    no_sources = plan_answer(ParsedPrompt("Why?", ()), SelectionLimits())
    assert no_sources.texts == []
    assert "".join(finish_answer(no_sources, nothing, SelectionLimits())) == NO_SOURCES
    empty = plan_answer(ParsedPrompt("Why?", (PromptSource(1, "a", "  "),)), SelectionLimits())
    assert "".join(finish_answer(empty, nothing, SelectionLimits())) == NO_ANSWER


def test_unrelated_sentences_give_no_answer_and_vectors_must_match() -> None:
    parsed = ParsedPrompt("Where are museums?", (PromptSource(1, "a", "Bananas are yellow."),))
    plan = plan_answer(parsed, SelectionLimits())
    vectors = np.stack([_unit(0, 1, 0), _unit(1, 0, 0)])
    assert "".join(finish_answer(plan, vectors, SelectionLimits(min_similarity=0.5))) == NO_ANSWER
    with pytest.raises(ValueError, match="2 texts to embed but 1 vectors"):
        finish_answer(plan, vectors[:1], SelectionLimits())


def test_an_answer_ends_before_its_first_stop_string() -> None:
    from answer_selection import cut_at_stop

    chunks = ["Paris ", "is ", "the ", "capital. ", "[1]"]
    assert cut_at_stop(chunks, ["[1]"]) == (["Paris ", "is ", "the ", "capital. "], True)
    assert cut_at_stop(chunks, ["e cap", "is"]) == (["Par"], True)  # the earliest, inside a chunk
    assert cut_at_stop(chunks, ["the ", "[1]"]) == (["Paris ", "is "], True)
    assert cut_at_stop(chunks, ["Paris"]) == ([], True)
    assert cut_at_stop(chunks, ["London", ""]) == (chunks, False)
    assert cut_at_stop(chunks, []) == (chunks, False)
