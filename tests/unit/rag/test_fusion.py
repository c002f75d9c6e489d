"""Reciprocal rank fusion."""

from __future__ import annotations

import pytest

from services.rag.store.fusion import RRF_K, reciprocal_rank_fusion


def test_items_in_both_rankings_win() -> None:
    fused = reciprocal_rank_fusion([["a", "both", "c"], ["x", "both", "y"]])
    assert fused[0] == ("both", pytest.approx(2 / (RRF_K + 2)))
    assert {item for item, _ in fused} == {"a", "both", "c", "x", "y"}


def test_scores_follow_the_formula_and_order_is_deterministic() -> None:
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=1)
    assert fused == [("b", pytest.approx(1 / 3 + 1 / 2)), ("a", 1 / 2), ("c", pytest.approx(1 / 3))]
    tie = reciprocal_rank_fusion([["p"], ["q"]])
    assert [item for item, _ in tie] == ["p", "q"]


def test_duplicates_within_a_ranking_count_once() -> None:
    assert reciprocal_rank_fusion([["a", "a"]]) == [("a", pytest.approx(1 / (RRF_K + 1)))]


def test_empty() -> None:
    assert reciprocal_rank_fusion([[], []]) == []
