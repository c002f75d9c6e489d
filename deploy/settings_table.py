"""Print the README's settings table from the settings Structs themselves: `just settings-table`.

Each row is an environment variable, its default and the comment written
beside the field, so the documentation cannot drift from the code.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import msgspec

from services.gateway.settings import GatewaySettings
from services.inference.settings import InferenceSettings
from services.rag.settings import RagSettings
from services.scraper.settings import ScraperSettings

__all__ = ["SETTINGS", "main", "table", "write_readme"]

SETTINGS: list[tuple[str, type[msgspec.Struct]]] = [
    ("GATEWAY", GatewaySettings),
    ("SCRAPER", ScraperSettings),
    ("RAG", RagSettings),
    ("INFERENCE", InferenceSettings),
]
_FIELD = re.compile(r"^\s+(\w+)\s*:[^#]*?(?:#\s*(.*))?$")


def _comments(settings: type[msgspec.Struct]) -> dict[str, str]:
    comments: dict[str, str] = {}
    for line in inspect.getsource(settings).splitlines():
        match = _FIELD.match(line)
        if match and match.group(2):
            comments[match.group(1)] = match.group(2).strip()
    return comments


def table(extra: list[tuple[str, type[msgspec.Struct]]] | None = None) -> str:
    """The markdown table of every setting."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for prefix, settings in SETTINGS + (extra or []):
        comments = _comments(settings)
        defaults = settings()
        for field in msgspec.structs.fields(settings):
            value = getattr(defaults, field.name)
            shown = ",".join(value) if isinstance(value, tuple) else value
            default = f"`{shown}`" if shown not in ("", ()) else "(empty)"
            meaning = comments.get(field.name, "").replace("|", "\\|")
            rows.append(f"| `{prefix}_{field.name.upper()}` | {default} | {meaning} |")
    return "\n".join(rows)


def write_readme(path: Path, text: str) -> None:
    """Replace what stands between the settings markers of the README."""
    readme = path.read_text()
    start, end = "<!-- settings:start -->", "<!-- settings:end -->"
    before, _, rest = readme.partition(start)
    _, _, after = rest.partition(end)
    path.write_text(f"{before}{start}\n{text}\n{end}{after}")


def main(argv: list[str]) -> int:
    """Print the table, or with `--write README.md` put it into the README."""
    extra: list[tuple[str, type[msgspec.Struct]]] = []
    try:
        from services.inference.jobs.settings import JobWorkerSettings

        extra.append(("INFERENCE_JOBS", JobWorkerSettings))
    except ImportError:
        pass
    text = table(extra)
    if argv[:1] == ["--write"]:
        write_readme(Path(argv[1]), text)
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
