"""``python -m htmltext FILE...``: print one JSON object, path -> extracted main text.

Files may be ``.html`` or gzip-compressed ``.html.gz``. Extraction is the
same :func:`htmltext.extract_main_text` the services call.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import msgspec

from htmltext.extract import extract_main_text

__all__ = ["main", "read_page"]


_GZIP_MAGIC = b"\x1f\x8b"


def read_page(path: Path) -> bytes:
    """The raw bytes of a page file, decompressed when it is gzip."""
    data = path.read_bytes()
    return gzip.decompress(data) if data.startswith(_GZIP_MAGIC) else data


def main(argv: list[str] | None = None) -> int:
    """Extract every file named on the command line; exit 1 if one cannot be read."""
    parser = argparse.ArgumentParser(prog="python -m htmltext", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    texts: dict[str, str] = {}
    failed = False
    for path in args.files:
        try:
            html = read_page(path)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            print(f"{path}: cannot read: {exc}", file=sys.stderr)
            failed = True
            continue
        texts[str(path)] = extract_main_text(html).text
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(texts).decode(), indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
