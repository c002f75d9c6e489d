"""A deterministic picture of a prompt: colours and shapes from its hash, its text on top."""

from __future__ import annotations

import hashlib
import io
import textwrap

from PIL import Image, ImageDraw, ImageFont

__all__ = ["render_prompt_picture"]

_SHAPES = 6  # shapes drawn behind the text


def _colour(seed: bytes, offset: int) -> tuple[int, int, int]:
    """Three bytes of the hash as an RGB colour."""
    return seed[offset % 32], seed[(offset + 1) % 32], seed[(offset + 2) % 32]


def _draw_shapes(draw: ImageDraw.ImageDraw, seed: bytes, width: int, height: int) -> None:
    """Ellipses and rectangles placed and coloured by the hash."""
    for shape in range(_SHAPES):
        base = 3 + shape * 4
        x0 = seed[base % 32] * width // 256
        y0 = seed[(base + 1) % 32] * height // 256
        x1 = min(width, x0 + max(4, seed[(base + 2) % 32] * width // 400))
        y1 = min(height, y0 + max(4, seed[(base + 3) % 32] * height // 400))
        fill = _colour(seed, base + 5)
        if seed[base % 32] % 2:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=fill)


def _draw_text(
    draw: ImageDraw.ImageDraw, prompt: str, width: int, height: int, ink: tuple[int, int, int]
) -> None:
    """The prompt, wrapped to the width, on a plain band for contrast."""
    font = ImageFont.load_default(size=max(8, min(width, height) // 16))
    chars_per_line = max(4, width // max(5, min(width, height) // 28))
    lines = textwrap.wrap(" ".join(prompt.split()), chars_per_line)[: max(1, height // 24)]
    if not lines:
        return
    text = "\n".join(lines)
    box = draw.multiline_textbbox((0, 0), text, font=font)
    left = max(2, (width - (box[2] - box[0])) // 2)
    top = max(2, (height - (box[3] - box[1])) // 2)
    draw.rectangle((left - 2, top - 2, left + box[2] + 2, top + box[3] + 2), fill=(255, 255, 255))
    draw.multiline_text((left, top), text, fill=ink, font=font)


def render_prompt_picture(prompt: str, width: int, height: int) -> bytes:
    """Return PNG bytes; the same prompt and size always give the same bytes."""
    seed = hashlib.sha256(prompt.encode("utf-8")).digest()
    image = Image.new("RGB", (width, height), _colour(seed, 0))
    draw = ImageDraw.Draw(image)
    _draw_shapes(draw, seed, width, height)
    _draw_text(draw, prompt, width, height, ink=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()
