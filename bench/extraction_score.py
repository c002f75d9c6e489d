"""Main-text extraction quality on the article-extraction benchmark pages.

The metric reproduces ``evaluate.py`` of scrapinghub's
article-extraction-benchmark (MIT): texts are tokenised with ``\\w+``, cut
into 4-token shingles (a text shorter than 4 tokens is one shingle), and each
page gets true/false positives and false negatives from shingle counts,
normalised to sum to one so that long pages weigh no more than short ones.
Precision is averaged over the pages that predicted something, recall over
the pages whose truth has something, and F1 is taken of the two averages.

Run ``python bench/extraction_score.py`` to extract the dataset's pages with
:func:`htmltext.extract_main_text` and print its figures beside two
baselines: the whole page's text, and the seed chapter's BeautifulSoup
``div#bodyContent`` parser.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

if __package__ in (None, ""):
    # Run as a script: make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from htmltext.extract import extract_main_text

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "DATASET_NAME",
    "SHINGLE_SIZE",
    "EXTRACTION_WORKERS",
    "ExtractionScore",
    "PageCounts",
    "default_dataset_dir",
    "load_dataset",
    "page_counts",
    "run_quality",
    "score",
    "seed_chapter_text",
    "whole_page_text",
]

DATASET_NAME = "article-extraction"
SHINGLE_SIZE = 4
EXTRACTION_WORKERS = 2

_TOKEN_RE = re.compile(r"\w+", re.UNICODE | re.MULTILINE | re.IGNORECASE | re.DOTALL)


class ExtractionScore(msgspec.Struct, frozen=True):
    """Benchmark figures: F1 of the mean precision and mean recall."""

    f1: float
    precision: float
    recall: float
    pages: int


class PageCounts(msgspec.Struct, frozen=True):
    """Shingle true/false positives and false negatives of one page, summing to 1."""

    tp: float
    fp: float
    fn: float


def _shingles(text: str, size: int) -> Counter[tuple[str, ...]]:
    tokens = _TOKEN_RE.findall(text or "")
    # As in evaluate.py: at least one (possibly short or empty) window.
    windows = (tuple(tokens[i : i + size]) for i in range(max(1, len(tokens) - size + 1)))
    return Counter(window for window in windows if window)


def page_counts(truth: str, prediction: str, size: int = SHINGLE_SIZE) -> PageCounts:
    """Normalised shingle counts of one page (all zero when both texts are empty)."""
    true_shingles = _shingles(truth, size)
    pred_shingles = _shingles(prediction, size)
    tp = fp = fn = 0.0
    for key in true_shingles.keys() | pred_shingles.keys():
        true_count = true_shingles.get(key, 0)
        pred_count = pred_shingles.get(key, 0)
        tp += min(true_count, pred_count)
        fp += max(0, pred_count - true_count)
        fn += max(0, true_count - pred_count)
    total = tp + fp + fn
    if total > 0:
        return PageCounts(tp / total, fp / total, fn / total)
    return PageCounts(tp, fp, fn)


def _precision(counts: PageCounts) -> float:
    if counts.fp == counts.fn == 0:
        return 1.0
    if counts.tp == counts.fp == 0:
        return 0.0
    return counts.tp / (counts.tp + counts.fp)


def _recall(counts: PageCounts) -> float:
    if counts.fp == counts.fn == 0:
        return 1.0
    if counts.tp == counts.fn == 0:
        return 0.0
    return counts.tp / (counts.tp + counts.fn)


def _mean(values: list[float]) -> float:
    # evaluate.py would raise on an empty mean (every prediction empty); we call it 0.
    return statistics.mean(values) if values else 0.0


def score_counts(pages: Iterable[PageCounts]) -> ExtractionScore:
    """Figures over pages already counted with :func:`page_counts`."""
    counted = list(pages)
    precision = _mean([_precision(c) for c in counted if c.tp + c.fp > 0])
    recall = _mean([_recall(c) for c in counted if c.tp + c.fn > 0])
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return ExtractionScore(f1=f1, precision=precision, recall=recall, pages=len(counted))


def score(predictions: dict[str, str], truths: dict[str, str]) -> ExtractionScore:
    """Score predicted main texts against the truth, page by page, as evaluate.py does.

    Raises ValueError when the two mappings do not cover the same pages.
    """
    if predictions.keys() != truths.keys():
        raise ValueError("prediction keys do not match ground truth keys")
    return score_counts(page_counts(truths[key], predictions[key]) for key in truths)


def default_dataset_dir() -> Path:
    """``$DATASETS_DIR/article-extraction``, else ``../shared/datasets/`` beside the repo."""
    root = os.environ.get("DATASETS_DIR")
    if root:
        return Path(root) / DATASET_NAME
    repo_root = Path(__file__).resolve().parent.parent
    return repo_root.parent / "shared" / "datasets" / DATASET_NAME


def load_dataset(dataset_dir: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    """Raw HTML bytes and ground-truth article bodies, keyed by page id."""
    raw_truth: dict[str, dict[str, Any]] = json.loads(
        (dataset_dir / "ground-truth.json").read_text(encoding="utf-8")
    )
    truths = {key: str(value.get("articleBody", "")) for key, value in raw_truth.items()}
    pages = {key: gzip.decompress((dataset_dir / "html" / f"{key}.html.gz").read_bytes()) for key in truths}
    return pages, truths


def whole_page_text(html: bytes) -> str:
    """Baseline: lxml ``text_content()`` of the whole page, scripts and styles dropped."""
    from lxml import etree
    from lxml import html as lxml_html
    from trafilatura.utils import decode_file

    # Decode first (charset declaration, else detection): lxml alone reads
    # undeclared UTF-8 as Latin-1 and breaks every non-ASCII word.
    text = decode_file(html)
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        root = lxml_html.document_fromstring(data, parser=lxml_html.HTMLParser(encoding="utf-8"))
    except (etree.ParserError, ValueError):
        return ""
    etree.strip_elements(root, "script", "style", etree.Comment, with_tail=False)
    return str(root.text_content())


def seed_chapter_text(html: bytes) -> str:
    """Baseline: the seed chapter's parser, BeautifulSoup ``div#bodyContent``."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    content = soup.find("div", id="bodyContent")
    return content.get_text() if content is not None else ""


def _extract_text(html: bytes) -> str:
    return extract_main_text(html).text


def _figures(found: ExtractionScore, seconds: float) -> dict[str, float]:
    figures: dict[str, float] = msgspec.structs.asdict(found)
    figures["ms_per_page"] = round(1000 * seconds / max(found.pages, 1), 2)
    return figures


def _timed(extractor: Callable[[bytes], str], pages: Mapping[str, bytes]) -> tuple[dict[str, str], float]:
    started = time.perf_counter()
    texts = {key: extractor(html) for key, html in pages.items()}
    return texts, time.perf_counter() - started


def run_quality(dataset_dir: Path) -> dict[str, dict[str, float]]:
    """Extract every dataset page and return F1/P/R (and ms/page) per extractor.

    ``htmltext`` runs in a process pool of :data:`EXTRACTION_WORKERS`, so its
    ms/page is wall time (after the workers started) divided by pages; the
    baselines run one at a time in this process.
    """
    pages, truths = load_dataset(dataset_dir)
    keys = sorted(pages)
    with ProcessPoolExecutor(max_workers=EXTRACTION_WORKERS) as pool:
        # Start the workers and pay their imports before the clock starts.
        list(pool.map(_extract_text, [pages[keys[0]]] * EXTRACTION_WORKERS))
        started = time.perf_counter()
        texts = dict(zip(keys, pool.map(_extract_text, [pages[k] for k in keys]), strict=True))
        seconds = time.perf_counter() - started
    results = {"htmltext": _figures(score(texts, truths), seconds)}
    baselines: dict[str, Callable[[bytes], str]] = {
        "whole_page_text": whole_page_text,
        "seed_bs4_bodyContent": seed_chapter_text,
    }
    for name, extractor in baselines.items():
        predicted, seconds = _timed(extractor, pages)
        results[name] = _figures(score(predicted, truths), seconds)
    return results


def _print_table(results: Mapping[str, Mapping[str, float]]) -> None:
    print(f"{'extractor':<24} {'F1':>6} {'P':>6} {'R':>6} {'ms/page':>8}")
    for name, figures in results.items():
        print(
            f"{name:<24} {figures['f1']:6.3f} {figures['precision']:6.3f} "
            f"{figures['recall']:6.3f} {figures['ms_per_page']:8.1f}"
        )


def main(argv: list[str] | None = None) -> int:
    """CLI: print the figures, optionally write them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-dir", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    dataset_dir = args.dataset_dir or default_dataset_dir()
    if not (dataset_dir / "ground-truth.json").is_file():
        print(f"dataset not found: {dataset_dir} (set DATASETS_DIR)", file=sys.stderr)
        return 2
    results = run_quality(dataset_dir)
    _print_table(results)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
