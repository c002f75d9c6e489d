"""Plain-text uploads, and the decoding every text-based format shares.

Uploads come in any encoding: UTF-8 (with or without BOM) and UTF-16 with a
BOM are read directly, anything else is detected. Line ends are normalised
to `\\n` and NUL characters dropped, whatever the format.
"""

from __future__ import annotations

from services.rag.errors import DocumentParseError
from services.rag.parsing.formats import DocumentFormat
from services.rag.parsing.sections import ParsedDocument, Section

__all__ = ["decode_text", "normalise_text", "parse_text"]

_PREFERRED_ENCODINGS = ("cp1252", "latin_1", "iso8859_15")


def parse_text(data: bytes) -> ParsedDocument:
    """A plain-text upload: one untitled section."""
    return ParsedDocument(
        format=DocumentFormat.TEXT, title=None, sections=(Section(text=decode_text(data).strip()),)
    )


def normalise_text(text: str) -> str:
    """`\\r\\n` and `\\r` line ends as `\\n`, NUL characters dropped."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def decode_text(data: bytes) -> str:
    """Text bytes as str: UTF-8 (with or without BOM), UTF-16 with BOM, else detected."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return normalise_text(data.decode("utf-16"))
        except UnicodeDecodeError:
            pass
    for encoding in ("utf-8-sig", "utf-8"):
        try:
            return normalise_text(data.decode(encoding))
        except UnicodeDecodeError:
            continue
    import charset_normalizer  # only the rare non-UTF-8 upload pays for the import

    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is None:
        raise DocumentParseError("text is in no character encoding we recognise")
    # Short texts often score the same in several single-byte code pages; among
    # equally good guesses prefer the most widespread one (WHATWG reads latin-1 as cp1252).
    tied = {m.encoding: m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)}
    chosen = next((tied[e] for e in _PREFERRED_ENCODINGS if e in tied), best)
    return normalise_text(str(chosen))
