"""`python -m bench.baseline --port P --index DIR`: serve the baseline on 127.0.0.1 with uvicorn."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from bench.baseline.app import BaselineSettings, create_app

__all__ = ["main"]


def main() -> None:
    """Parse the arguments and serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--index", type=Path, required=True, help="folder written by DocumentIndex.save")
    parser.add_argument(
        "--no-pace", action="store_true", help="answer without the generate model's decoding time"
    )
    args = parser.parse_args()
    app = create_app(BaselineSettings(index_dir=args.index, pace=not args.no_pace))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
