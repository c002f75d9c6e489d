"""Body decoding: BOM, header charset, <meta>/XML declaration, then detection."""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from services.scraper.charset import META_SCAN_BYTES, declared_charset, decode_body
from services.scraper.fetch import PageFetcher
from services.scraper.settings import ScraperSettings

if TYPE_CHECKING:
    from tests.unit.scraper.conftest import Serve


RUSSIAN = (
    "Москва — столица России, город федерального значения, административный центр "
    "Центрального федерального округа и центр Московской области, в состав которой не входит. "
    "Крупнейший по численности населения город России и её субъект. "
)
JAPANESE = "日本語のテキストです。東京は日本の首都であり、世界有数の大都市です。"


def test_header_charset_wins_over_meta() -> None:
    body = f'<meta charset="shift_jis"><p>{RUSSIAN}</p>'.encode("cp1251")
    assert RUSSIAN in decode_body(body, "windows-1251", markup=True)


@pytest.mark.parametrize(
    "meta",
    [
        '<meta charset="shift_jis">',
        "<meta charset=Shift_JIS>",
        '<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=shift_jis">',
        "<meta http-equiv='content-type' content='text/html;charset=shift_jis'/>",
    ],
)
def test_meta_charset_when_the_header_has_none(meta: str) -> None:
    body = f"<html><head>{meta}</head><body>{JAPANESE}</body></html>".encode("shift_jis")
    assert JAPANESE in decode_body(body, None, markup=True)


def test_xml_declaration() -> None:
    body = f'<?xml version="1.0" encoding="windows-1251"?><html><p>{RUSSIAN}</p></html>'.encode("cp1251")
    assert declared_charset(body) == "cp1251"


def test_meta_is_not_read_in_plain_text() -> None:
    body = f'<meta charset="shift_jis"> {RUSSIAN}'.encode()
    assert RUSSIAN in decode_body(body, None, markup=False)


def test_meta_past_the_scan_window_is_ignored() -> None:
    body = b" " * META_SCAN_BYTES + b'<meta charset="shift_jis">'
    assert declared_charset(body) is None


@pytest.mark.parametrize(
    ("label", "codec"),
    [("iso-8859-1", "cp1252"), ("US-ASCII", "cp1252"), ("utf-16", "utf-8"), ("gb2312", "gb18030")],
)
def test_meta_labels_read_as_browsers_do(label: str, codec: str) -> None:
    assert declared_charset(f'<meta charset="{label}">'.encode()) == codec


def test_unknown_labels_fall_through_to_detection() -> None:
    body = f'<meta charset="no-such-charset"><p>{RUSSIAN * 3}</p>'.encode("cp1251")
    assert RUSSIAN in decode_body(body, "x-bogus", markup=True)


@pytest.mark.parametrize(("text", "codec"), [(RUSSIAN * 3, "cp1251"), (JAPANESE * 3, "shift_jis")])
def test_detection_without_any_declaration(text: str, codec: str) -> None:
    assert text in decode_body(f"<p>{text}</p>".encode(codec), None, markup=True)


@pytest.mark.parametrize(
    ("bom", "codec"),
    [(codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")],
)
def test_bom_wins(bom: bytes, codec: str) -> None:
    body = bom + f"<p>{JAPANESE}</p>".encode(codec)
    assert decode_body(body, "iso-8859-1", markup=True) == f"<p>{JAPANESE}</p>"


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/html; charset=windows-1251", f"<p>{RUSSIAN}</p>".encode("cp1251"), RUSSIAN),
        ("text/html", f'<meta charset="shift_jis"><p>{JAPANESE}</p>'.encode("shift_jis"), JAPANESE),
        ("text/html", f"<p>{RUSSIAN * 3}</p>".encode("cp1251"), RUSSIAN),
        ("text/plain", (JAPANESE * 3).encode("shift_jis"), JAPANESE),
    ],
    ids=["header", "meta", "detected-cp1251", "detected-plain-sjis"],
)
async def test_fetched_pages_are_decoded(
    serve: Serve, settings: ScraperSettings, content_type: str, body: bytes, expected: str
) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": content_type})

    async with serve({"/": page}) as site, PageFetcher(settings) as fetcher:
        fetched = await fetcher.fetch(site.url("/"), timeout_s=5)
    assert expected in fetched.text
