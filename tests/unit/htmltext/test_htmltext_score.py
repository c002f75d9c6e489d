"""The benchmark metric (bench/extraction_score.py) on hand-made texts."""

from __future__ import annotations

import pytest

from bench.extraction_score import PageCounts, page_counts, score


def test_shingles_are_four_tokens_with_counts() -> None:
    # truth: (a b c d), (b c d e); prediction: (a b c d) -> tp 1, fp 0, fn 1.
    assert page_counts("a b c d e", "a b c d") == PageCounts(tp=0.5, fp=0.0, fn=0.5)


def test_repeated_shingles_count_each_time() -> None:
    # truth shingles: xyzw twice, yzwx, zwxy, wxyz -> 5; prediction: xyzw once.
    counts = page_counts("x y z w x y z w", "x y z w")
    assert (counts.tp, counts.fp, counts.fn) == pytest.approx((0.2, 0.0, 0.8))


def test_tokens_ignore_punctuation_but_not_case() -> None:
    assert page_counts("Hello, world! How are you?", "Hello world How are you").fp == 0
    assert page_counts("The cat sat down", "the cat sat down") == PageCounts(0.0, 0.5, 0.5)


def test_text_shorter_than_a_shingle_is_one_shingle() -> None:
    assert page_counts("two words", "two words") == PageCounts(1.0, 0.0, 0.0)
    assert page_counts("two words", "two") == PageCounts(0.0, 0.5, 0.5)


def test_unicode_words_are_tokens() -> None:
    assert page_counts("Größe über alles heute", "Größe über alles heute").tp == 1.0


def test_empty_prediction_counts_for_recall_only() -> None:
    assert page_counts("a b c d", "") == PageCounts(0.0, 0.0, 1.0)
    found = score({"p1": "a b c d", "p2": ""}, {"p1": "a b c d", "p2": "e f g h"})
    assert found.precision == 1.0  # p2 predicted nothing: not in the precision mean
    assert found.recall == 0.5


def test_empty_truth_counts_for_precision_only() -> None:
    found = score({"p1": "a b c d", "p2": "e f g h"}, {"p1": "a b c d", "p2": ""})
    assert found.precision == 0.5
    assert found.recall == 1.0  # p2 has no truth: not in the recall mean


def test_page_with_both_empty_is_left_out() -> None:
    found = score({"p1": "a b c d e", "p2": ""}, {"p1": "a b c d", "p2": ""})
    assert page_counts("", "") == PageCounts(0.0, 0.0, 0.0)
    assert (found.precision, found.recall, found.pages) == (0.5, 1.0, 2)


def test_f1_is_of_the_mean_precision_and_recall() -> None:
    # p1: P 1, R 0.5; p2: P 0.5, R 1 -> means 0.75 and 0.75, F1 0.75
    # (the mean of per-page F1s would be 0.667).
    found = score({"p1": "a b c d", "p2": "a b c d e"}, {"p1": "a b c d e", "p2": "a b c d"})
    assert found.precision == pytest.approx(0.75)
    assert found.recall == pytest.approx(0.75)
    assert found.f1 == pytest.approx(0.75)


def test_nothing_predicted_anywhere_scores_zero() -> None:
    found = score({"p1": "", "p2": ""}, {"p1": "a b c d", "p2": "e f g h"})
    assert (found.f1, found.precision, found.recall) == (0.0, 0.0, 0.0)


def test_keys_must_match() -> None:
    with pytest.raises(ValueError, match="keys"):
        score({"p1": "a"}, {"p2": "a"})
