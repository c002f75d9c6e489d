"""The cheap first stage of the extractive answer: BM25 between the question and each sentence.

Embedding every sentence of every source costs about a millisecond of CPU
per sentence, and a prompt holds 60-100 of them; most cannot answer the
question.  ``shortlist`` keeps the ``keep`` sentences with the best BM25
score (the sentences of this prompt are the collection, so a word common to
all of them weighs little) and only those are embedded for the semantic
selection.  Pure Python, no I/O, so it is unit-tested without Triton.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import TypeVar

__all__ = ["BM25_B", "BM25_K1", "STOP_WORDS", "bm25_scores", "shortlist", "terms_of"]

BM25_K1 = 1.2  # term-frequency saturation (the usual Okapi value)
BM25_B = 0.75  # length normalisation (the usual Okapi value)

# Words that say nothing about what a question is about (English function words
# and the words questions are made of).
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most my
    myself no nor not now of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves also s t page pages say says said tell told""".split()  # noqa: SIM905
)

_URL = re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+", re.IGNORECASE)
_WORD = re.compile(r"\w+", re.UNICODE)

_Item = TypeVar("_Item")


def _stem(word: str) -> str:
    """Fold English plurals (``cities`` -> ``city``, ``metres`` -> ``metre``), nothing more aggressive."""
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    return word[:-1] if word.endswith("s") else word


def terms_of(text: str) -> list[str]:
    """The indexing terms of ``text``: lower-case word stems without stop words or URLs.

    A URL in a question names a source; it says nothing about the content asked for.
    """
    words = _WORD.findall(_URL.sub(" ", text).lower())
    return [_stem(word) for word in words if word not in STOP_WORDS]


def bm25_scores(query: str, documents: Sequence[str]) -> list[float]:
    """Okapi BM25 of ``query`` against each of ``documents`` (the collection is ``documents``)."""
    if not documents:
        return []
    query_terms = set(terms_of(query))
    document_terms = [Counter(terms_of(document)) for document in documents]
    if not query_terms:
        return [0.0] * len(documents)
    average_length = sum(sum(terms.values()) for terms in document_terms) / len(documents) or 1.0
    count = len(documents)
    frequency = {term: sum(term in terms for terms in document_terms) for term in query_terms}
    weight = {
        term: math.log(1.0 + (count - found + 0.5) / (found + 0.5))
        for term, found in frequency.items()
        if found
    }
    scores: list[float] = []
    for terms in document_terms:
        length = sum(terms.values())
        norm = BM25_K1 * (1.0 - BM25_B + BM25_B * length / average_length)
        score = 0.0
        for term, idf in weight.items():
            tf = terms.get(term, 0)
            if tf:
                score += idf * tf * (BM25_K1 + 1.0) / (tf + norm)
        scores.append(score)
    return scores


def shortlist(query: str, items: Sequence[_Item], texts: Sequence[str], keep: int) -> list[_Item]:
    """The ``keep`` items whose texts score best for ``query``, in their original order.

    Ties (for example sentences sharing no word with the question) go to the
    earlier item; ``keep`` < 1 or at least ``len(items)`` keeps everything.
    """
    if len(items) != len(texts):
        raise ValueError(f"{len(items)} items but {len(texts)} texts")
    if keep < 1 or len(items) <= keep:
        return list(items)
    scores = bm25_scores(query, texts)
    best = sorted(range(len(items)), key=lambda i: (-scores[i], i))[:keep]
    return [items[i] for i in sorted(best)]
