"""BM25 shortlist of the extractive generate model (its cheap first stage)."""

from __future__ import annotations

import pytest
from lexical_rank import bm25_scores, shortlist, terms_of


def test_terms_drop_stop_words_urls_and_fold_plurals() -> None:
    assert terms_of("What does the page https://example.com/p/1 say about the Capitals?") == ["capital"]
    folded = ["river", "city", "class", "8", "849", "metre"]
    assert terms_of("Rivers, cities and classes: 8,849 metres") == folded


def test_rare_matching_terms_score_highest() -> None:
    sentences = [
        "Paris is the capital of France.",
        "France is a country in western Europe.",
        "Bananas are rich in potassium.",
    ]
    scores = bm25_scores("What is the capital of France?", sentences)
    assert scores[0] > scores[1] > scores[2] == 0.0


def test_no_shared_words_scores_zero() -> None:
    assert bm25_scores("volcanoes erupting", ["Bananas are yellow.", "Cats sleep."]) == [0.0, 0.0]
    assert bm25_scores("the of and", ["Bananas are yellow."]) == [0.0]
    assert bm25_scores("anything", []) == []


def test_shortlist_keeps_the_best_in_original_order() -> None:
    texts = ["Cats sleep.", "Everest is tall.", "Dogs bark.", "Mount Everest height is 8,849 metres."]
    kept = shortlist("How tall is Mount Everest?", list(range(4)), texts, keep=2)
    assert kept == [1, 3]


def test_shortlist_ties_go_to_earlier_items_and_small_inputs_pass_whole() -> None:
    texts = ["One.", "Two.", "Three."]
    assert shortlist("unrelated words", ["a", "b", "c"], texts, keep=2) == ["a", "b"]
    assert shortlist("unrelated", ["a", "b", "c"], texts, keep=3) == ["a", "b", "c"]
    assert shortlist("unrelated", ["a", "b", "c"], texts, keep=0) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="2 items but 3 texts"):
        shortlist("q", ["a", "b"], texts, keep=1)
