"""Extractive answers: pick the source sentences closest to the question.

Two stages: BM25 (``lexical_rank``) keeps the ``candidate_sentences`` best
sentences of the prompt, then only those are embedded and the ones closest
to the question (cosine) answer.  ``plan_answer`` gives the texts to embed,
``finish_answer`` turns their vectors into streamed chunks; the ``generate``
model and the benchmark's in-process baseline both run exactly these.
Pure functions (numpy only) so that they are unit-tested without Triton.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from lexical_rank import shortlist
from prompt_format import ParsedPrompt, PromptSource, split_sentences

__all__ = [
    "NO_ANSWER",
    "NO_SOURCES",
    "AnswerPlan",
    "Candidate",
    "SelectionLimits",
    "answer_chunks",
    "candidates_of",
    "cut_at_stop",
    "finish_answer",
    "plan_answer",
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
    max_candidates: int = 512  # sentences of a prompt considered at all (in source order)
    candidate_sentences: int = 12  # of those, the best by BM25 are embedded (0: embed all)


@dataclass(frozen=True)
class AnswerPlan:
    """What to embed for one prompt: the question first, then the shortlisted sentences."""

    question: str
    candidates: tuple[Candidate, ...]
    fallback: str  # the answer when nothing is selected

    @property
    def texts(self) -> list[str]:
        """The texts to embed, in the order ``finish_answer`` expects their vectors."""
        return [self.question] + [candidate.text for candidate in self.candidates] if self.candidates else []


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


def plan_answer(parsed: ParsedPrompt, limits: SelectionLimits) -> AnswerPlan:
    """Split the sources into sentences and keep the ones worth embedding (none: nothing to embed)."""
    fallback = NO_SOURCES if not parsed.sources else NO_ANSWER
    candidates = candidates_of(parsed.sources, limits.max_candidates)
    kept = shortlist(parsed.question, candidates, [c.text for c in candidates], limits.candidate_sentences)
    return AnswerPlan(parsed.question, tuple(kept), fallback)


def finish_answer(
    plan: AnswerPlan, vectors: npt.NDArray[np.float32], limits: SelectionLimits
) -> list[str]:
    """The streamed chunks of the answer, given the unit vectors of ``plan.texts`` (same order)."""
    if not plan.candidates:
        return answer_chunks([], plan.fallback)
    if len(vectors) != len(plan.texts):
        raise ValueError(f"{len(plan.texts)} texts to embed but {len(vectors)} vectors")
    selected = select_sentences(vectors[0], vectors[1:], plan.candidates, limits)
    return answer_chunks(selected, NO_ANSWER)


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


def cut_at_stop(chunks: Sequence[str], stops: Sequence[str]) -> tuple[list[str], bool]:
    """The chunks up to the first of ``stops`` (which is left out, as vLLM does), and whether one came."""
    text = ""
    for index, chunk in enumerate(chunks):
        text += chunk
        found = [at for stop in stops if stop and (at := text.find(stop)) >= 0]
        if found:
            kept = list(chunks[:index])
            head = text[: min(found)][len("".join(kept)) :]
            return ([*kept, head] if head else kept), True
    return list(chunks), False
