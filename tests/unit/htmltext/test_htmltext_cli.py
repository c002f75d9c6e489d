"""python -m htmltext FILE...: one JSON object, path -> main text."""

from __future__ import annotations

import gzip
import json
from typing import TYPE_CHECKING

from htmltext.__main__ import main

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

PAGE = (
    "<html><head><title>Orchard</title></head><body><nav><a href='/'>Home</a></nav><article>"
    "<p>The orchard planted three hundred new apple trees this spring, most of them old "
    "local varieties that had nearly disappeared from the valley's farms.</p>"
    "</article></body></html>"
)


def test_cli_prints_one_json_object_for_html_and_gzip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "page.html"
    plain.write_text(PAGE, encoding="utf-8")
    packed = tmp_path / "page.html.gz"
    packed.write_bytes(gzip.compress(PAGE.encode()))
    assert main([str(plain), str(packed)]) == 0
    texts = json.loads(capsys.readouterr().out)
    assert set(texts) == {str(plain), str(packed)}
    assert all("three hundred new apple trees" in text for text in texts.values())
    assert all("Home" not in text for text in texts.values())


def test_cli_reports_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "page.html"
    page.write_text(PAGE, encoding="utf-8")
    missing = tmp_path / "missing.html"
    assert main([str(page), str(missing)]) == 1
    captured = capsys.readouterr()
    assert list(json.loads(captured.out)) == [str(page)]
    assert "missing.html" in captured.err
