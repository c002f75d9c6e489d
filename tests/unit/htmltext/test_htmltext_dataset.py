"""Three real pages of the shared benchmark: extraction overlaps the ground truth.

The full-dataset score is a benchmark (bench/extraction_score.py), not a test.
"""

from __future__ import annotations

import pytest

from bench.extraction_score import default_dataset_dir, load_dataset, page_counts
from htmltext import extract_main_text

_PAGES = 3


def test_three_dataset_pages_overlap_their_ground_truth() -> None:
    dataset_dir = default_dataset_dir()
    if not (dataset_dir / "ground-truth.json").is_file():
        pytest.skip(f"benchmark dataset not found at {dataset_dir} (set DATASETS_DIR)")
    pages, truths = load_dataset(dataset_dir)
    for key in sorted(pages)[:_PAGES]:
        text = extract_main_text(pages[key]).text
        counts = page_counts(truths[key], text)
        assert text, key
        assert counts.tp / (counts.tp + counts.fp) > 0.5, key
        assert counts.tp / (counts.tp + counts.fn) > 0.5, key
