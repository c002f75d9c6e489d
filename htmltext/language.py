"""The language of a page: its own declaration first, else a small detector.

The detector is py3langid (langid.py's model, shipped inside the package, no
download): it only runs when the page declares nothing usable, and only on
the first :attr:`LanguageSettings.detect_max_chars` of the extracted text.
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from typing import TYPE_CHECKING, Protocol

import msgspec

if TYPE_CHECKING:
    from lxml import etree

__all__ = ["LanguageSettings", "declared_language", "detect_language", "page_language"]

# Primary subtag of a BCP 47 tag; "x-..." private use and "i-..." grandfathered are refused.
_PRIMARY_SUBTAG_RE = re.compile(r"^([A-Za-z]{2,3})(?:$|[-_])")
# Codes that declare no language at all.
_NOT_A_LANGUAGE = frozenset({"und", "mul", "zxx", "mis"})

_DECLARATION_XPATHS = (
    "/html/@lang",
    "/html/@xml:lang",
    "//meta[translate(@http-equiv, 'CONTENT-LANGUAGE', 'content-language') = 'content-language']/@content",
    "//meta[translate(@name, 'LANGUAGE', 'language') = 'language']/@content",
    "//meta[translate(@name, 'DC.LANGUAGE', 'dc.language') = 'dc.language']/@content",
    "//meta[@property = 'og:locale']/@content",
)


class LanguageSettings(msgspec.Struct, frozen=True):
    """Limits of language detection, for pages that declare no language."""

    # Texts shorter than this are too short to classify reliably: no answer.
    detect_min_chars: int = 40
    # Only this much of the text is classified: enough for a stable answer, and cheap.
    detect_max_chars: int = 2000
    # Below this normalised probability the detector's answer is dropped.
    detect_min_probability: float = 0.5


def _normalise(declared: str) -> str | None:
    # "en-US", "pt_BR", "de, en" -> "en", "pt", "de"
    first = declared.strip().split(",")[0].strip()
    match = _PRIMARY_SUBTAG_RE.match(first)
    if match is None:
        return None
    code = match.group(1).lower()
    return None if code in _NOT_A_LANGUAGE else code


def declared_language(tree: etree._Element) -> str | None:
    """The primary language subtag the page declares (``"en"``), or None."""
    for xpath in _DECLARATION_XPATHS:
        values = tree.xpath(xpath, namespaces={"xml": "http://www.w3.org/XML/1998/namespace"})
        for value in values if isinstance(values, list) else []:
            code = _normalise(str(value))
            if code is not None:
                return code
    return None


class _Classifier(Protocol):
    def classify(self, text: str) -> tuple[str, float]: ...


@cache
def _identifier() -> _Classifier:
    # Loaded once per process (about 0.1 s); the model is read-only afterwards.
    # Imported by name: py3langid ships no type information.
    langid = importlib.import_module("py3langid.langid")
    classifier: _Classifier = langid.LanguageIdentifier.from_pickled_model(langid.MODEL_FILE, norm_probs=True)
    return classifier


def detect_language(text: str, settings: LanguageSettings | None = None) -> str | None:
    """ISO 639-1 code the detector finds in ``text``, or None when unsure."""
    limits = settings or LanguageSettings()
    sample = text[: limits.detect_max_chars]
    if len(sample.strip()) < limits.detect_min_chars:
        return None
    code, probability = _identifier().classify(sample)
    return str(code) if float(probability) >= limits.detect_min_probability else None


def page_language(tree: etree._Element, text: str, settings: LanguageSettings | None = None) -> str | None:
    """The declared language, else the detected one, else None."""
    return declared_language(tree) or detect_language(text, settings)
