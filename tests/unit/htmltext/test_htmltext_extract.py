"""extract_main_text on small hand-written pages and on broken input."""

from __future__ import annotations

import gzip

import pytest

from htmltext import ExtractedPage, extract_main_text
from htmltext.language import declared_language, detect_language
from htmltext.main_text import drop_repeated_headline, tidy_whitespace

_PARAGRAPHS = (
    "The harbour commission approved a plan on Tuesday to rebuild the old north pier, "
    "which has been closed to ships since the storm damaged it two winters ago.",
    "Engineers expect the work to take eighteen months and to cost about four million "
    "euros, most of it paid by the regional government and a European fund.",
    "Fishermen who moved their boats to the southern quay said they welcomed the decision "
    "but asked for temporary moorings closer to the fish market during the works.",
)

ARTICLE_PAGE = f"""<!DOCTYPE html>
<html lang="en-GB">
<head>
  <meta charset="utf-8">
  <title>Harbour pier to be rebuilt | Coastal Times</title>
  <meta property="og:title" content="Harbour pier to be rebuilt">
</head>
<body>
  <header><nav><ul>
    <li><a href="/">Home</a></li><li><a href="/politics">Politics</a></li>
    <li><a href="/sport">Sport</a></li><li><a href="/weather">Weather</a></li>
  </ul></nav></header>
  <main><article>
    <h1>Harbour pier to be rebuilt</h1>
    <p>{_PARAGRAPHS[0]}</p>
    <p>{_PARAGRAPHS[1]}</p>
    <p>{_PARAGRAPHS[2]}</p>
  </article></main>
  <footer>
    <p>Copyright 2024 Coastal Times Media Group. All rights reserved.</p>
    <a href="/privacy">Privacy policy</a> <a href="/cookies">Cookie settings</a>
  </footer>
</body>
</html>"""

GERMAN_PAGE = """<html><head><title>Neue Brücke</title></head><body><article>
<p>Die Stadt hat am Dienstag beschlossen, die alte Brücke über den Fluss abzureißen
und bis zum nächsten Sommer eine neue, breitere Brücke für Fußgänger und Radfahrer
zu bauen. Die Bauarbeiten sollen im Frühjahr beginnen und werden etwa zwei Millionen
Euro kosten, die zum größten Teil das Land übernimmt.</p>
</article></body></html>"""


def test_article_page_keeps_main_text_and_drops_boilerplate() -> None:
    page = extract_main_text(ARTICLE_PAGE, url="https://news.example/pier")
    for paragraph in _PARAGRAPHS:
        assert paragraph in page.text
    for boilerplate in ("Politics", "Weather", "Copyright", "Cookie settings"):
        assert boilerplate not in page.text
    assert page.title == "Harbour pier to be rebuilt"
    assert page.language == "en"


def test_headline_is_not_repeated_in_the_text() -> None:
    page = extract_main_text(ARTICLE_PAGE)
    assert page.text.split("\n")[0] == _PARAGRAPHS[0]


def test_bytes_are_decoded_from_the_declared_charset() -> None:
    page = extract_main_text(
        GERMAN_PAGE.replace("<head>", '<head><meta charset="iso-8859-1">').encode("latin-1")
    )
    assert "Brücke über den Fluss" in page.text


def test_language_is_detected_when_not_declared() -> None:
    page = extract_main_text(GERMAN_PAGE.encode())
    assert page.title == "Neue Brücke"
    assert page.language == "de"


def test_title_falls_back_to_h1() -> None:
    page = extract_main_text(
        ARTICLE_PAGE.replace("<title>", "<x-title>")
        .replace("</title>", "</x-title>")
        .replace('<meta property="og:title" content="Harbour pier to be rebuilt">', "")
    )
    assert page.title == "Harbour pier to be rebuilt"


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("en-US", "en"),
        ("pt_BR", "pt"),
        ("DE", "de"),
        ("fr, en", "fr"),
        ("x-klingon", None),
        ("und", None),
        ("", None),
        ("12", None),
    ],
)
def test_declared_language_is_the_primary_subtag(declared: str, expected: str | None) -> None:
    from lxml import html as lxml_html

    tree = lxml_html.document_fromstring(f'<html lang="{declared}"><body><p>x</p></body></html>')
    assert declared_language(tree) == expected


def test_content_language_meta_is_a_declaration() -> None:
    from lxml import html as lxml_html

    tree = lxml_html.document_fromstring(
        '<html><head><meta http-equiv="Content-Language" content="nl-BE"></head><body>x</body></html>'
    )
    assert declared_language(tree) == "nl"


def test_short_text_gets_no_detected_language() -> None:
    assert detect_language("Ja.") is None


@pytest.mark.parametrize(
    "not_html",
    [
        b"",
        "",
        "   \n  ",
        b"\x00\x01\x02\xff\xfe binary junk \x00" * 50,
        "just a line of plain text, no markup at all",
        '{"json": true, "items": [1, 2, 3]}',
        "<" * 10_000,
    ],
)
def test_input_that_is_not_html_gives_empty_text(not_html: str | bytes) -> None:
    assert extract_main_text(not_html) == ExtractedPage(title=None, text="", language=None)


@pytest.mark.parametrize(
    ("broken", "kept"),
    [
        ("<html><body><div><p>unclosed paragraph <b>bold <i>and more", "unclosed paragraph bold"),
        ("<p>a fragment without html or body", "a fragment without html"),
        (b"<html><body><p>\xff\xfe invalid utf-8 \xc3\x28 bytes</p></body></html>", "invalid utf"),
        (gzip.compress(b"<html><body><p>compressed page</p></body></html>"), "compressed page"),
    ],
)
def test_broken_html_keeps_what_can_be_read(broken: str | bytes, kept: str) -> None:
    assert kept in extract_main_text(broken).text


def test_empty_input_gives_an_empty_page() -> None:
    assert extract_main_text(b"") == ExtractedPage(title=None, text="", language=None)


def test_repeated_headline_is_dropped_only_near_the_top() -> None:
    text = "Big news\nFirst paragraph.\nBig news\nLast paragraph."
    assert drop_repeated_headline(text, ["BIG NEWS!"], max_lines=2) == (
        "First paragraph.\nBig news\nLast paragraph."
    )
    assert drop_repeated_headline(text, [], max_lines=2) == text


def test_whitespace_is_tidied() -> None:
    assert tidy_whitespace("\t a  b \n\n  \n c\u00a0 d ") == "a b\nc d"


def test_pathological_nesting_does_not_crash() -> None:
    nested = "<html><body>" + "<div>" * 5000 + "<p>deep</p>" + "</div>" * 5000 + "</body></html>"
    assert isinstance(extract_main_text(nested).text, str)
