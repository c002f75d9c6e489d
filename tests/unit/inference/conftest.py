"""Make the model folders' helper modules importable (Triton loads them beside model.py)."""

from __future__ import annotations

import sys
from pathlib import Path

_MODELS = Path(__file__).resolve().parents[3] / "deploy" / "triton" / "models"
for _folder in (_MODELS / "generate" / "1", _MODELS / "image" / "1", _MODELS / "embed" / "1"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
