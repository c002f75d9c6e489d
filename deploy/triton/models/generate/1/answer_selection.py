"""Extractive answers: pick the source sentences closest to the question.

Pure functions (numpy only) so that they are unit-tested without Triton.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from prompt_format import PromptSource, split_sentences

__all__ = [
    "NO_ANSWER",
    "NO_SOURCES",
    "Candidate",
    "SelectionLimits",
    "answer_chunks",
    "candidates_of",
    "select_sentences",
]

NO_ANSWER = "The provided sources do not contain an answer to this question."
NO_SOURCES = "No sources were provided, so the supplied context does not contain an answer to this question."


@dataclass(frozen=True)
class Candidate:
    """A sentence of a source, in source order."""

    source: int  # the source's citation number
    text: str


@dataclass(frozen=True)
class SelectionLimits:
    """How picky the selection is (the model reads these from config.pbtxt)."""

    min_similarity: float = 0.35  # cosine below this never answers
    max_gap: float = 0.12  # keep only sentences this close to the best score
    max_sentences: int = 3  # at most this many sentences in an answer


def candidates_of(sources: Sequence[PromptSource], max_candidates: int) -> list[Candidate]:
    """Split every source into sentences, in order, keeping at most ``max_candidates``."""
    candidates: list[Candidate] = []
    for source in sources:
        for sentence in split_sentences(source.text):
            if len(candidates) >= max_candidates:
                return candidates
            candidates.append(Candidate(source.number, sentence))
    return candidates


def select_sentences(
    question: npt.NDArray[np.float32],
    sentences: npt.NDArray[np.float32],
    candidates: Sequence[Candidate],
    limits: SelectionLimits,
) -> list[Candidate]:
    """Return the best-matching candidates in source order, without duplicates.

    ``question`` (shape [d]) and ``sentences`` (shape [n, d]) are unit vectors,
    so their dot product is the cosine similarity.
    """
    if not candidates:
        return []
    scores = sentences @ question
    best = float(scores.max())
    floor = max(limits.min_similarity, best - limits.max_gap)
    ranked = sorted(range(len(candidates)), key=lambda i: (-float(scores[i]), i))
    chosen: list[int] = []
    seen: set[str] = set()
    for index in ranked:
        if float(scores[index]) < floor or len(chosen) >= limits.max_sentences:
            break
        key = " ".join(candidates[index].text.lower().split())
        if key in seen:
            continue
        seen.add(key)
        chosen.append(index)
    return [candidates[i] for i in sorted(chosen)]


def answer_chunks(selected: Sequence[Candidate], no_answer: str) -> list[str]:
    """Turn the selected sentences into streamed chunks: one word each, then ``[n]``.

    Every chunk but the last carries its trailing space, so the chunks joined
    read as the answer.
    """
    words: list[str] = []
    if not selected:
        words = no_answer.split()
    for candidate in selected:
        words.extend(candidate.text.split())
        words.append(f"[{candidate.source}]")
    chunks = [word + " " for word in words]
    if chunks:
        chunks[-1] = chunks[-1].rstrip()
    return chunks
