"""SSRF guard: address policy on IP objects; refusals proven only against loopback targets.

No test here connects to anything but 127.0.0.1 (and a local server that must stay unhit).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from services.scraper.errors import FetchRefused
from services.scraper.fetch import PageFetcher
from services.scraper.settings import ScraperSettings
from services.scraper.ssrf import AddressPolicy, GuardedResolver, HostRefused, literal_host_refusal

if TYPE_CHECKING:
    from tests.unit.scraper.conftest import Serve

GUARD = AddressPolicy()

REFUSED_ADDRESSES = [
    "127.0.0.1",
    "127.255.255.254",
    "::1",
    "0.0.0.0",
    "::",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "224.0.0.1",
    "ff02::1",
    "100.64.0.1",
    "100.127.255.254",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1 (obfuscated)
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
]
GLOBAL_ADDRESSES = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "2001:4860:4860::8888",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
]


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_policy_refuses_non_global_addresses(address: str) -> None:
    assert GUARD.address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", GLOBAL_ADDRESSES)
def test_policy_allows_global_addresses(address: str) -> None:
    assert GUARD.address_refusal(ipaddress.ip_address(address)) is None


def test_refusal_reasons_name_the_category() -> None:
    def reason(address: str) -> str:
        refusal = GUARD.address_refusal(ipaddress.ip_address(address))
        assert refusal is not None
        return refusal

    assert reason("127.0.0.1") == "a loopback address"
    assert reason("0.0.0.0") == "an unspecified address"
    assert reason("100.64.0.1") == "in the shared address space 100.64.0.0/10"
    assert reason("169.254.169.254") == "a link-local address"
    assert "embedding 127.0.0.1" in reason("::ffff:127.0.0.1")


def test_allow_list_networks_and_hosts() -> None:
    policy = AddressPolicy.from_allow_list([" 10.0.0.0/8 ", "LocalHost.", "[::1]", "", "bücher.example"])
    assert policy.address_refusal(ipaddress.ip_address("10.9.8.7")) is None
    assert policy.address_refusal(ipaddress.ip_address("::ffff:10.9.8.7")) is None
    assert policy.address_refusal(ipaddress.ip_address("::1")) is None
    assert policy.address_refusal(ipaddress.ip_address("11.0.0.1")) is None  # global anyway
    assert policy.address_refusal(ipaddress.ip_address("192.168.0.1")) is not None
    assert policy.address_refusal(ipaddress.ip_address("127.0.0.1")) is not None
    assert policy.host_allowed("localhost")
    assert policy.host_allowed("LOCALHOST.")
    assert policy.host_allowed("xn--bcher-kva.example")
    assert not policy.host_allowed("example.com")


def test_guard_off_allows_everything() -> None:
    policy = AddressPolicy.from_allow_list([], enabled=False)
    assert policy.address_refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert literal_host_refusal("2130706433", policy) is None


@pytest.mark.parametrize(
    ("host", "decoded"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7F000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0x08.0x08.0x08.0x08", "8.8.8.8"),  # non-canonical spellings are refused even when global
    ],
)
def test_numeric_spellings_are_refused(host: str, decoded: str) -> None:
    refusal = literal_host_refusal(host, GUARD)
    assert refusal is not None
    assert f"non-canonical spelling of {decoded}" in refusal


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::", "999999999999"])
def test_literal_hosts_refused(host: str) -> None:
    assert literal_host_refusal(host, GUARD) is not None


@pytest.mark.parametrize("host", ["8.8.8.8", "2001:4860:4860::8888", "example.com", "127.0.0.1.example"])
def test_literal_check_passes_global_addresses_and_names(host: str) -> None:
    assert literal_host_refusal(host, GUARD) is None


async def test_resolver_refuses_localhost() -> None:
    resolver = GuardedResolver(GUARD)
    with pytest.raises(HostRefused, match="loopback"):
        await resolver.resolve("localhost", 80, family=socket.AF_UNSPEC)


async def test_resolver_returns_only_checked_numeric_addresses() -> None:
    resolver = GuardedResolver(AddressPolicy.from_allow_list(["127.0.0.0/8"]))
    results = await resolver.resolve("localhost", 8080, family=socket.AF_UNSPEC)
    assert results
    for result in results:
        assert ipaddress.ip_address(result["host"]) in ipaddress.ip_network("127.0.0.0/8")
        assert result["port"] == 8080
        assert result["hostname"] == "localhost"


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="<p>secret</p>", content_type="text/html")


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "LOCALHOST",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "2130706433",
        "0177.0.0.1",
        "0x7f.1",
        "127.1",
    ],
)
async def test_fetcher_refuses_loopback_without_connecting(serve: Serve, host: str) -> None:
    async with serve({"/": _ok, "/robots.txt": _ok}) as site:
        async with PageFetcher(ScraperSettings()) as fetcher:  # default settings: guard on, robots on
            with pytest.raises(FetchRefused) as caught:
                await fetcher.fetch(f"http://{host}:{site.port}/", timeout_s=5)
        assert caught.value.code == "refused"
        assert caught.value.url == f"http://{host}:{site.port}/"
        assert site.total_hits == 0


async def test_redirect_to_refused_target_is_never_fetched(serve: Serve) -> None:
    async with serve({"/": _ok}) as target:

        async def redirect(request: web.Request) -> web.Response:
            location = request.query["to"].replace("PORT", str(target.port))
            raise web.HTTPFound(location)

        async with serve({"/go": redirect}) as start:
            # Only the name "localhost" is allowed: the IP-literal hops below are not.
            settings = ScraperSettings(allow_hosts=("localhost",), respect_robots=False)
            async with PageFetcher(settings) as fetcher:
                for to in ("http://127.0.0.1:PORT/", "http://2130706433:PORT/", "http://[::1]:PORT/"):
                    with pytest.raises(FetchRefused):
                        await fetcher.fetch(f"http://localhost:{start.port}/go?to={to}", timeout_s=5)
            assert start.hits["/go"] == 3
            assert target.total_hits == 0


async def test_guard_switched_off_fetches_loopback(serve: Serve) -> None:
    async with serve({"/": _ok}) as site:
        async with PageFetcher(ScraperSettings(ssrf_guard=False, respect_robots=False)) as fetcher:
            page = await fetcher.fetch(site.url("/"), timeout_s=5)
        assert page.text == "<p>secret</p>"
        assert site.hits["/"] == 1
