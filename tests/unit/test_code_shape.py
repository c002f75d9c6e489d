"""The shape the code keeps: small functions, and one bus request (in `runtime/`)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "runtime", "proto", "htmltext", "deploy")
MAX_FUNCTION_LINES = 60


def _modules(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


def _functions(path: Path) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def test_no_function_is_over_sixty_lines() -> None:
    long = [
        f"{path.relative_to(ROOT)}:{f.lineno} {f.name} ({f.end_lineno - f.lineno + 1} lines)"  # type: ignore[operator]
        for path in _modules(*PACKAGES)
        for f in _functions(path)
        if f.end_lineno is not None and f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, "split these by meaning:\n" + "\n".join(long)


def _broker_requests(path: Path) -> list[int]:
    """Lines where a broker's `request` is called (`broker.request(...)`, `self._broker.request(...)`)."""
    calls = [n for n in ast.walk(ast.parse(path.read_text(), filename=str(path))) if isinstance(n, ast.Call)]
    return [
        call.lineno
        for call in calls
        if isinstance(call.func, ast.Attribute)
        and call.func.attr == "request"
        and "broker" in ast.unparse(call.func.value)
    ]


def test_services_ask_each_other_only_through_runtime_bus_request() -> None:
    outside = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in _modules("services", "proto", "htmltext", "deploy", "bench")
        for line in _broker_requests(path)
    ]
    assert not outside, "use runtime.bus.request:\n" + "\n".join(outside)


@pytest.mark.parametrize("source", ["await broker.request(m, 's')", "await self._broker.request(m, 's')"])
def test_the_request_check_sees_a_hand_written_request(tmp_path: Path, source: str) -> None:
    module = tmp_path / "handler.py"
    module.write_text(f"async def f(self, broker, m):\n    {source}\n")
    assert _broker_requests(module) == [2]


def test_every_setting_is_read_by_its_service() -> None:
    """A setting nothing reads is a lie: each field is read (`<obj>.<field>`) in its service's code."""
    from deploy.settings_table import SETTINGS

    unread = []
    for entry in SETTINGS:
        code = "\n".join(path.read_text() for path in _modules(f"services/{entry.service}", "runtime"))
        for name in entry.settings.__struct_fields__:
            if re.search(rf"\.{name}\b", code) is None:
                unread.append(f"{entry.prefix}_{name.upper()}")
    assert not unread, "enforce or remove:\n" + "\n".join(unread)
