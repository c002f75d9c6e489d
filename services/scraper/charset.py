"""Turn a fetched body into text: BOM, then the header's charset, then ``<meta>``, then detection.

CPU-bound on large bodies (detection, decoding): call :func:`decode_body` in a thread.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

__all__ = ["META_SCAN_BYTES", "decode_body", "declared_charset"]

META_SCAN_BYTES = 4096  # how far into an HTML body a <meta charset> or XML declaration is looked for

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: its BOM starts the same way
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml\b[^>]*?\bencoding\s*=\s*["']([\w.:-]+)""", re.IGNORECASE)
# Labels browsers read as a superset (WHATWG Encoding): decoding with the superset is what
# the author saw. A <meta> claiming UTF-16 is read as UTF-8 (the bytes were ASCII-compatible).
_SUPERSETS = {
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
    "iso8859-9": "cp1254",
    "gb2312": "gb18030",
    "gbk": "gb18030",
}
_META_UTF16 = frozenset({"utf-16", "utf-16-le", "utf-16-be"})


def _codec(label: str | None) -> str | None:
    """Python codec name of a charset label, or None if unknown."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except LookupError:
        return None
    return _SUPERSETS.get(name, name)


def declared_charset(body: bytes) -> str | None:
    """The charset an HTML/XHTML body declares in its first bytes (``<meta>`` or XML declaration)."""
    head = body[:META_SCAN_BYTES]
    for pattern in (_XML_ENCODING, _META_CHARSET):
        match = pattern.search(head)
        if match is not None:
            codec = _codec(match.group(1).decode("ascii", "replace"))
            if codec is not None:
                return "utf-8" if codec in _META_UTF16 else codec
    return None


def decode_body(body: bytes, header_charset: str | None, *, markup: bool) -> str:
    """Decode ``body``; ``markup`` enables ``<meta>``/XML-declaration sniffing (HTML, XHTML)."""
    for bom, bom_codec in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(bom_codec, errors="replace")
    codec = _codec(header_charset)
    if codec is None and markup:
        codec = declared_charset(body)
    if codec is not None:
        return body.decode(codec, errors="replace")
    best = charset_normalizer.from_bytes(body).best()
    if best is not None and best.encoding:
        return body.decode(best.encoding, errors="replace")
    return body.decode("utf-8", errors="replace")
