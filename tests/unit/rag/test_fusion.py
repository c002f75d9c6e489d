"""Reciprocal rank fusion."""

from __future__ import annotations

import pytest

from services.rag.store.fusion import RRF_K, reciprocal_rank_fusion


def test_items_in_both_rankings_win() -> None:
    fused = reciprocal_rank_fusion([["a", "both", "c"], ["x", "both", "y"]])
    assert fused[0][0] == "both"
    assert fused[0][1] == pytest.approx(2 / (RRF_K + 2))
    assert {item for item, _ in fused} == {"a", "both", "c", "x", "y"}


def test_scores_follow_the_formula_and_order_is_deterministic() -> None:
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=1)
    assert [item for item, _ in fused] == ["b", "a", "c"]
    assert [score for _, score in fused] == pytest.approx([1 / 3 + 1 / 2, 1 / 2, 1 / 3])
    tie = reciprocal_rank_fusion([["p"], ["q"]])
    assert [item for item, _ in tie] == ["p", "q"]


def test_duplicates_within_a_ranking_count_once() -> None:
    [(item, score)] = reciprocal_rank_fusion([["a", "a"]])
    assert item == "a"
    assert score == pytest.approx(1 / (RRF_K + 1))


def test_empty() -> None:
    assert reciprocal_rank_fusion([[], []]) == []
