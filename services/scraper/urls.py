"""Find http(s) URLs in free text and normalise them into cache keys.

Choices:

* only ``http://`` and ``https://`` (any case) are taken; defanged ``hxxp://``, ``ftp://``,
  ``mailto:`` and bare e-mail addresses or domains are ignored;
* a URL ends at white space, a quote, ``<``, ``>``, a backtick or a control character;
  then trailing punctuation is stripped, and a trailing closing bracket only when it has
  no opening partner inside the URL (so ``Foo_(bar)`` survives, ``[x](http://a/b)`` and
  ``(see http://a/b)`` lose the outer one);
* the text of the prompt is returned (first occurrence), de-duplicated by
  :func:`normalise_url`.
"""

from __future__ import annotations

import re

from yarl import URL

__all__ = ["DEFAULT_MAX_URLS", "find_urls", "normalise_url"]

DEFAULT_MAX_URLS = 10

# Also ends at typographic quotes (\u201c \u201d \u00ab \u00bb), CJK corner brackets and CJK
# sentence punctuation (ideographic full stop and comma, full-width comma, ! and ?), which
# CJK text puts right after a URL without a space.
_CANDIDATE = re.compile(
    r"(?<![\w.+-])https?://"
    r"[^\s<>\"`\x00-\x1f\x7f\u201c\u201d\u00ab\u00bb\u300c-\u300f\u3001\u3002\uff0c\uff01\uff1f]+",
    re.IGNORECASE,
)
# Characters that end a sentence or a clause rather than a URL (with CJK full-width ones).
_TRAILING = frozenset(".,;:!?'\"*_~\u2026\u3002\u3001\uff0c\uff1b\uff1a\uff01\uff1f\u2019")
_CLOSING_TO_OPENING = {
    ")": "(",
    "]": "[",
    "}": "{",
    "\uff09": "\uff08",  # full-width parentheses
    "\u3011": "\u3010",  # black lenticular brackets
    "\u300b": "\u300a",  # double angle brackets
}
_SCHEMES = frozenset({"http", "https"})


def _strip_trailing(candidate: str) -> str:
    """Drop trailing punctuation and unbalanced closing brackets."""
    end = len(candidate)
    while end > 0:
        last = candidate[end - 1]
        if last in _TRAILING:
            end -= 1
            continue
        opening = _CLOSING_TO_OPENING.get(last)
        if opening is not None:
            body = candidate[:end]
            if body.count(last) > body.count(opening):
                end -= 1
                continue
        break
    return candidate[:end]


def _parse_http_url(text: str) -> URL | None:
    try:
        url = URL(text)
    except (ValueError, TypeError):  # yarl raises these on bad ports, hosts, IPv6 literals
        return None
    if url.scheme.lower() not in _SCHEMES or not url.raw_host:
        return None
    try:
        url.port  # noqa: B018 - validates the port
    except ValueError:
        return None
    return url


def normalise_url(url: str) -> str:
    """Cache key of a URL: lower-case scheme and host, IDNA host, no default port, no fragment.

    Path, query and user info are kept as they are (no sorting, no re-encoding).
    Raises ValueError when ``url`` is not an absolute http(s) URL.
    """
    parsed = _parse_http_url(url.strip())
    if parsed is None:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    scheme = parsed.scheme.lower()
    port = None if parsed.is_default_port() else parsed.explicit_port
    host = (parsed.raw_host or "").lower()
    if ":" in host:  # an IPv6 literal: encoded build wants it bracketed
        host = f"[{host}]"
    rebuilt = URL.build(
        scheme=scheme,
        user=parsed.raw_user,
        password=parsed.raw_password,
        host=host,
        port=port,
        path=parsed.raw_path or "/",
        query_string=parsed.raw_query_string,
        encoded=True,
    )
    return str(rebuilt)


def find_urls(text: str, *, max_urls: int = DEFAULT_MAX_URLS) -> list[str]:
    """The distinct http(s) URLs of ``text`` in order of appearance, at most ``max_urls``."""
    found: list[str] = []
    seen: set[str] = set()
    if max_urls <= 0:
        return found
    for match in _CANDIDATE.finditer(text):
        candidate = _strip_trailing(match.group(0))
        try:
            key = normalise_url(candidate)
        except ValueError:
            continue
        if key in seen:
            continue
        seen.add(key)
        found.append(candidate)
        if len(found) >= max_urls:
            break
    return found
