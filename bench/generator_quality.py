"""Answer quality and cost of the extractive generator with and without its BM25 shortlist.

`python -m bench.generator_quality` builds a known-answer set from the
`article-extraction` dataset (no tuning data: every question is made the same
way from every page) and runs the generator's own logic
(`answer_selection.plan_answer` / `select_sentences`, loaded from the Triton
model folder) with the embed model's own encoder in this process, for several
`candidate_sentences` values (0 = embed every sentence, the old behaviour).

Each prompt is what a chat sees: source [1] is the page as the scraper
extracts it (title and main text, clipped to the gateway's 4,000 characters),
sources [2]-[5] are four passages of OTHER pages that share the most words
with the question (distractors that crowd a lexical shortlist on purpose).
Questions, per page, from one ground-truth sentence found in source [1]:

- `words`: the sentence's content words (stop words dropped), a seeded 60% of them;
- `sparse`: three seeded content words of the sentence;
- `title`: the gateway benchmark's question about the page's title (no known
  sentence: only agreement with embedding everything is reported).

A known-answer hit: a selected sentence lies inside the ground-truth sentence
or holds it. Cost: texts embedded per prompt, and CPU seconds of embedding
them (fresh, no cache) for the first `CPU_PROMPTS` prompts (noisy on a shared
machine: texts embedded per prompt is the steadier cost figure).
"""

from __future__ import annotations

import json
import random
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.baseline.generator import Encoder, load_model_module, open_embed_encoder
from bench.extraction_score import default_dataset_dir, load_dataset
from htmltext.extract import extract_main_text
from proto.prompt import PromptSource, build_prompt

__all__ = ["run"]

SHORTLISTS = (0, 8, 12, 16, 24, 32)  # candidate_sentences values compared (0: embed all)
STYLES = ("words", "sparse", "title")
SEED = 20261125
MAX_SOURCE_CHARS = 4_000  # the gateway's max_source_chars
PASSAGE_CHARS = 1_000  # distractor passages, about a rag chunk
DISTRACTORS = 4  # the gateway's retrieve_k
KEEP_SHARE = 0.6  # share of a sentence's content words a `words` question keeps
SENTENCE_WORDS = (10, 40)  # ground-truth sentences this many words long
CPU_PROMPTS = 20  # prompts whose embedding CPU is measured without a cache
RESULTS = Path(__file__).resolve().parent / "results" / "generator_quality.json"

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SPACES = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _SPACES.sub(" ", text).strip().lower()


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0]


def _pages() -> list[tuple[str, str, str]]:
    """(title, source text as a chat sees it, ground-truth body) per page, in id order."""
    html, truths = load_dataset(default_dataset_dir())
    pages = []
    for key in sorted(truths):
        page = extract_main_text(html[key])
        title = page.title or key[:16]
        pages.append((title, _clip(f"{title}\n{page.text}", MAX_SOURCE_CHARS), truths[key]))
    return pages


def _truth_sentence(source: str, body: str, rng: random.Random) -> str | None:
    low, high = SENTENCE_WORDS
    inside = _norm(source)
    found = [
        s
        for s in (_norm(p) for line in body.splitlines() for p in _SENTENCE_END.split(line))
        if low <= len(s.split()) <= high and s in inside
    ]
    return rng.choice(found) if found else None


def _question(style: str, sentence: str, title: str, rng: random.Random, terms_of: Any) -> str:
    if style == "title":
        return (
            f"What does the page https://example.com/p/{rng.randrange(10**6)} say about "
            f"{' '.join(title.split()[:16])}?"
        )
    words = [w for w in re.findall(r"\w+", sentence) if terms_of(w)]
    if style == "sparse":
        picked = sorted(rng.sample(range(len(words)), min(3, len(words))))
    else:
        count = min(len(words), max(3, round(len(words) * KEEP_SHARE)))
        picked = sorted(rng.sample(range(len(words)), count))
    return " ".join(words[i] for i in picked) + "?"


def _prompts(modules: dict[str, Any]) -> list[dict[str, Any]]:
    """One prompt per page and style: the question, the formatted prompt, the truth sentence."""
    rank = modules["lexical_rank"]
    pages = _pages()
    passages = [
        (owner, _clip(text[i : i + PASSAGE_CHARS], PASSAGE_CHARS))
        for owner, (_, text, _) in enumerate(pages)
        for i in range(0, len(text), PASSAGE_CHARS)
    ]
    prompts = []
    for index, (title, source, body) in enumerate(pages):
        rng = random.Random(SEED + index)
        truth = _truth_sentence(source, body, rng)
        if truth is None:
            continue
        for style in STYLES:
            question = _question(style, truth, title, rng, rank.terms_of)
            others = [p for p in passages if p[0] != index]
            scores = rank.bm25_scores(question, [text for _, text in others])
            best = sorted(range(len(others)), key=lambda i: -scores[i])[:DISTRACTORS]
            sources = [PromptSource(1, f"https://example.com/page/{index}", source)]
            sources += [
                PromptSource(n, f"doc-{others[i][0]}.html", others[i][1]) for n, i in enumerate(best, 2)
            ]
            prompts.append(
                {
                    "style": style,
                    "question": question,
                    "truth": truth,
                    "prompt": build_prompt(question, sources),
                }
            )
    return prompts


def _hit(selected: Sequence[Any], truth: str) -> bool:
    return any(_norm(c.text) in truth or truth in _norm(c.text) for c in selected if len(c.text) >= 20)


def _evaluate(modules: dict[str, Any], model: Encoder, prompts: list[dict[str, Any]]) -> dict[str, Any]:
    selection, fmt = modules["answer_selection"], modules["prompt_format"]
    memo: dict[str, np.ndarray[Any, Any]] = {}

    def vectors(texts: list[str]) -> np.ndarray[Any, Any]:
        missing = [t for t in dict.fromkeys(texts) if t not in memo]
        if missing:
            encoded = model.encode(missing)
            memo.update(zip(missing, np.asarray(encoded, dtype=np.float32), strict=True))
        return np.stack([memo[t] for t in texts])

    answers: dict[int, list[tuple[str, ...]]] = {}
    per_style: dict[str, dict[str, list[float]]]
    results: dict[str, Any] = {}
    for keep in SHORTLISTS:
        limits = selection.SelectionLimits(candidate_sentences=keep)
        per_style = {s: {"hit": [], "same": [], "texts": []} for s in STYLES}
        answers[keep] = []
        for n, item in enumerate(prompts):
            plan = selection.plan_answer(fmt.parse_prompt(item["prompt"]), limits)
            found = vectors(plan.texts)
            chosen = selection.select_sentences(found[0], found[1:], plan.candidates, limits)
            answers[keep].append(tuple(c.text for c in chosen))
            figures = per_style[item["style"]]
            figures["hit"].append(float(_hit(chosen, item["truth"])))
            figures["same"].append(float(answers[keep][n] == answers[SHORTLISTS[0]][n]))
            figures["texts"].append(float(len(plan.texts)))
        results[f"candidate_sentences_{keep}"] = {
            style: {
                "known_answer_hit_share": round(statistics.mean(f["hit"]), 3) if style != "title" else None,
                "same_answer_as_embed_all_share": round(statistics.mean(f["same"]), 3),
                "texts_embedded_per_prompt": round(statistics.mean(f["texts"]), 1),
            }
            for style, f in per_style.items()
        }
    return results


def _cpu_per_prompt(
    modules: dict[str, Any], model: Encoder, prompts: list[dict[str, Any]]
) -> dict[str, float]:
    """CPU ms of embedding one prompt's texts from scratch (no cache), per shortlist size."""
    selection, fmt = modules["answer_selection"], modules["prompt_format"]
    sample = [p for p in prompts if p["style"] == "title"][:CPU_PROMPTS]
    cpu: dict[str, float] = {}
    for keep in SHORTLISTS:
        limits = selection.SelectionLimits(candidate_sentences=keep)
        started = time.process_time()
        for item in sample:
            texts = selection.plan_answer(fmt.parse_prompt(item["prompt"]), limits).texts
            model.encode(texts)
        cpu[f"candidate_sentences_{keep}"] = round((time.process_time() - started) * 1000 / len(sample), 1)
    return cpu


def run() -> dict[str, Any]:
    """Build the set, evaluate every shortlist size, print and return the figures."""
    import os

    names = ("prompt_format", "lexical_rank", "answer_selection")
    modules = {name: load_model_module(name) for name in names}
    model = open_embed_encoder()  # the embed model's own encoder (ONNX Runtime), every core
    prompts = _prompts(modules)
    results: dict[str, Any] = {"prompts": len(prompts), "pages": len(prompts) // len(STYLES)}
    results["quality"] = _evaluate(modules, model, prompts)
    results["embed_cpu_ms_per_prompt_no_cache"] = _cpu_per_prompt(modules, model, prompts)
    results["machine_load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(run(), indent=2, sort_keys=True) + "\n")
