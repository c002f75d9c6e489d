"""`python -m bench [area]`: run one benchmark area, or all, and write bench/results/<area>.json.

Each area is a module `bench/<area>.py` with `run() -> dict` that starts
what it needs, prints its figures beside its baseline, and returns them.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

AREAS = ("scraper", "rag", "inference", "gateway", "jobs", "generator_quality")
RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str]) -> int:
    """Run the named areas (all when none or `all` is named)."""
    names = [a for a in argv if a != "all"] or list(AREAS)
    unknown = [name for name in names if name not in AREAS]
    if unknown:
        print(f"unknown benchmark area(s) {unknown}; choose from {', '.join(AREAS)}", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    for name in names:
        print(f"== bench {name} ==", flush=True)
        started = time.monotonic()
        module = importlib.import_module(f"bench.{name}")
        results = module.run()
        results.setdefault("bench_seconds", round(time.monotonic() - started, 1))
        path = RESULTS / f"{name}.json"
        path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
