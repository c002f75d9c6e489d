"""URL finding in ugly prompts and cache-key normalisation."""

from __future__ import annotations

import pytest

from services.scraper.urls import find_urls, normalise_url


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("read [the docs](https://example.com/docs) now", ["https://example.com/docs"]),
        ("see <http://example.com/a?b=1>.", ["http://example.com/a?b=1"]),
        ('he said "https://example.com/q" twice', ["https://example.com/q"]),
        ("single 'https://example.com/s' quotes", ["https://example.com/s"]),
        ("the end: https://example.com/x.", ["https://example.com/x"]),
        (
            "list https://a.example/1, https://b.example/2; https://c.example/3!",
            ["https://a.example/1", "https://b.example/2", "https://c.example/3"],
        ),
        ("(see https://example.com/p)", ["https://example.com/p"]),
        ("[https://example.com/p]", ["https://example.com/p"]),
        ("{https://example.com/p}", ["https://example.com/p"]),
        ("trailing https://example.com/p?!:;'\"", ["https://example.com/p"]),
        ("https://en.wikipedia.org/wiki/Foo_(bar)", ["https://en.wikipedia.org/wiki/Foo_(bar)"]),
        ("(https://en.wikipedia.org/wiki/Foo_(bar))", ["https://en.wikipedia.org/wiki/Foo_(bar)"]),
        ("[w](https://en.wikipedia.org/wiki/Foo_(bar))", ["https://en.wikipedia.org/wiki/Foo_(bar)"]),
        ("HTTPS://EXAMPLE.COM/Path", ["HTTPS://EXAMPLE.COM/Path"]),
        ("Http://Example.com:8080/x?q=1&r=2#frag", ["Http://Example.com:8080/x?q=1&r=2#frag"]),
        ("idn https://bücher.example/straße ok", ["https://bücher.example/straße"]),
        ("日本語 https://例え.テスト/パス。次", ["https://例え.テスト/パス"]),
        ("\uff08https://example.com/cjk\uff09", ["https://example.com/cjk"]),  # full-width ( )
        (
            "見て https://example.com/jp、https://example.com/jp2\uff0c終",  # full-width comma
            ["https://example.com/jp", "https://example.com/jp2"],
        ),
        ("«https://example.com/guillemets»", ["https://example.com/guillemets"]),
        (
            "ipv6 http://[::1]:8080/x and port http://example.com:81",
            ["http://[::1]:8080/x", "http://example.com:81"],
        ),
        ("defanged hxxp://evil.example/x and hxxps://evil.example", []),
        ("ftp://files.example/x and mailto:someone@example.com", []),
        ("mail me at someone@example.com or www.example.com", []),
        ("xhttp://example.com/ is not a URL", []),
        ("http:// and https:/// are empty", []),
        ("bad port http://example.com:99999/x", []),
        ("user info http://user@example.com/x", ["http://user@example.com/x"]),
        ("", []),
    ],
)
def test_find_urls_in_ugly_prompts(prompt: str, expected: list[str]) -> None:
    assert find_urls(prompt) == expected


def test_duplicates_after_normalisation_keep_first_spelling_and_order() -> None:
    prompt = (
        "https://b.example/x then HTTPS://B.EXAMPLE:443/x#top and https://a.example/ "
        "and https://b.example/x again, http://b.example/x differs by scheme"
    )
    assert find_urls(prompt) == [
        "https://b.example/x",
        "https://a.example/",
        "http://b.example/x",
    ]


def test_at_most_max_urls() -> None:
    prompt = " ".join(f"https://site{i}.example/" for i in range(25))
    assert len(find_urls(prompt)) == 10
    assert find_urls(prompt, max_urls=3) == [
        "https://site0.example/",
        "https://site1.example/",
        "https://site2.example/",
    ]
    assert find_urls(prompt, max_urls=0) == []


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("HTTP://Example.COM:80/a?b=1#frag", "http://example.com/a?b=1"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/A/B?Z=1&a=2", "https://example.com:8443/A/B?Z=1&a=2"),
        ("https://bücher.example/x", "https://xn--bcher-kva.example/x"),
        ("http://[::1]:80/x", "http://[::1]/x"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        # %7E is an unreserved character: decoding it gives the same resource (RFC 3986 6.2.2.2)
        ("http://example.com/%7Euser?q=a%20b", "http://example.com/~user?q=a%20b"),
    ],
)
def test_normalise_url(url: str, key: str) -> None:
    assert normalise_url(url) == key


@pytest.mark.parametrize("url", ["ftp://example.com/", "example.com", "http://", "http://example.com:99999/"])
def test_normalise_url_rejects_non_http(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        normalise_url(url)
