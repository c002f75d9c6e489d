"""Reciprocal rank fusion: one ranking out of several, from ranks alone.

RRF (Cormack, Clarke and Buettcher, 2009) scores an item
``sum(1 / (k + rank))`` over the rankings it appears in (rank from 1), so
BM25 scores and cosine similarities never have to be made comparable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["RRF_K", "reciprocal_rank_fusion"]

RRF_K = 60  # the constant of the original paper; damps the weight of the very top ranks


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], *, k: int = RRF_K) -> list[tuple[str, float]]:
    """Fuse rankings of ids (best first) into (id, score) pairs, best first.

    Ties keep the order in which ids were first seen, scanning the rankings in
    turn, so the result is deterministic.
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(dict.fromkeys(ranking), start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    order = {item: position for position, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda pair: (-pair[1], order[pair[0]]))
