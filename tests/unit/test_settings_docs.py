"""docs/settings.md is what `just docs` writes, it lists every settings class, and the docs' links hold."""

from __future__ import annotations

import ast
import difflib
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import msgspec

from deploy.settings_table import SETTINGS, document, meanings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_DOC = ROOT / "docs" / "settings.md"
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


# A function that loads settings for its callers: its own call, and how a call of it names
# the class and the prefix (argument positions; the prefix is the upper-cased argument).
_WRAPPERS = {"runtime.service.serve": ("load_settings(settings_type, service.upper())", "serve", 1, 0)}


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    if len(call.args) > position:
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _calls(node: ast.AST, function: str | None = None) -> Iterator[tuple[str | None, ast.Call]]:
    """Every call under `node`, with the name of the function it is in (None: module level)."""
    for child in ast.iter_child_nodes(node):
        inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
        if isinstance(child, ast.Call):
            yield function, child
        yield from _calls(child, inner)


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    return call.func.attr if isinstance(call.func, ast.Attribute) else None


def _loaded_settings() -> tuple[set[tuple[str, str, str]], list[str]]:
    """(module, class name, prefix) of every settings load in services/ and runtime/, and problems."""
    loaded: set[tuple[str, str, str]] = set()
    problems: list[str] = []
    wrapper_names = {name: (position, prefix) for _, name, position, prefix in _WRAPPERS.values()}
    for path in sorted([*(ROOT / "services").rglob("*.py"), *(ROOT / "runtime").rglob("*.py")]):
        module = _module_name(path)
        for function, call in _calls(ast.parse(path.read_text(), filename=str(path))):
            name = _called_name(call)
            if name == "load_settings":
                wrapper = _WRAPPERS.get(f"{module}.{function}")
                if wrapper is not None:
                    if ast.unparse(call) != wrapper[0]:
                        problems.append(f"{module}.{function} changed its call: update _WRAPPERS here")
                    continue
                settings, prefix = _argument(call, 0, "settings_type"), _argument(call, 1, "prefix")
            elif name in wrapper_names and isinstance(call.func, ast.Name) and module.startswith("services."):
                position, prefix_position = wrapper_names[name]
                settings, prefix = _argument(call, position, ""), _argument(call, prefix_position, "")
            else:
                continue
            if isinstance(settings, ast.Name) and isinstance(prefix, ast.Constant):
                loaded.add((module, settings.id, str(prefix.value).upper()))
            else:
                problems.append(
                    f"{module}: {ast.unparse(call)}: load settings with a class name and a literal "
                    "prefix, so that docs/settings.md can list them"
                )
    return loaded, problems


def test_settings_doc_is_generated_from_the_classes() -> None:
    expected = document()
    written = SETTINGS_DOC.read_text() if SETTINGS_DOC.exists() else ""
    diff = "".join(
        difflib.unified_diff(
            written.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            "docs/settings.md",
            "generated",
            n=0,
        )
    )
    assert written == expected, f"docs/settings.md is out of date: run `just docs`\n{diff[:3000]}"


def test_every_loaded_settings_class_is_documented_with_its_prefix() -> None:
    found, problems = _loaded_settings()
    assert not problems, problems
    assert found, "found no settings load under services/"
    loaded = {(getattr(importlib.import_module(module), name), prefix) for module, name, prefix in found}
    documented = {(entry.settings, entry.prefix) for entry in SETTINGS}
    missing = sorted(f"{s.__module__}.{s.__name__} ({prefix})" for s, prefix in loaded - documented)
    assert not missing, f"add to SETTINGS in deploy/settings_table.py, then run `just docs`: {missing}"
    unused = sorted(f"{s.__name__} ({prefix})" for s, prefix in documented - loaded)
    assert not unused, f"listed in deploy/settings_table.py but loaded by no service: {unused}"


def test_every_setting_has_a_meaning() -> None:
    missing = [
        f"{entry.prefix}_{field.name.upper()}"
        for entry in SETTINGS
        for field in msgspec.structs.fields(entry.settings)
        if not meanings(entry.settings).get(field.name)
    ]
    assert not missing, f"write what these mean as a `# comment` at the end of the field's line: {missing}"


def test_meaning_is_the_trailing_comment_else_the_comment_above() -> None:
    class Example(msgspec.Struct):
        # A section header, not a meaning.
        first: int = 1  # the trailing comment
        # The comment above,
        # on two lines.
        second: str = "#"
        third: bool = False

    assert meanings(Example) == {
        "first": "the trailing comment",
        "second": "The comment above, on two lines.",
        "third": "",
    }


def _prose(text: str) -> str:
    """The text without its fenced code blocks."""
    return re.sub(r"^```.*?^```[^\n]*$", "", text, flags=re.MULTILINE | re.DOTALL)


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of the page's headings."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", _prose(page.read_text()), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_relative_links_in_the_docs_point_at_files() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in _LINK.findall(_prose(page.read_text())):
            path, _, anchor = target.partition("#")
            if re.match(r"^[a-z][a-z0-9+.-]*:", path):
                continue  # a URL
            linked = (page.parent / path) if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, f"broken links: {broken}"
