"""The placeholder image model's drawing."""

from __future__ import annotations

import io

from PIL import Image
from prompt_picture import render_prompt_picture


def test_same_prompt_same_bytes_and_size() -> None:
    first = render_prompt_picture("a lighthouse at night", 200, 120)
    assert first == render_prompt_picture("a lighthouse at night", 200, 120)
    picture = Image.open(io.BytesIO(first))
    assert (picture.format, picture.size, picture.mode) == ("PNG", (200, 120), "RGB")


def test_different_prompts_differ_in_colour() -> None:
    one = Image.open(io.BytesIO(render_prompt_picture("alpha", 64, 64))).getpixel((0, 0))
    two = Image.open(io.BytesIO(render_prompt_picture("omega", 64, 64))).getpixel((0, 0))
    assert one != two


def test_tiny_and_long_prompts_render() -> None:
    assert render_prompt_picture("x " * 500, 16, 16).startswith(b"\x89PNG")
