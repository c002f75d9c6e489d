"""SSRF guard: which destinations the scraper may connect to.

Two places apply one :class:`AddressPolicy`:

* :func:`literal_host_refusal` checks hosts that are IP addresses (aiohttp connects
  to those without asking any resolver) and refuses legacy numeric spellings such as
  ``2130706433``, ``0177.0.0.1`` or ``0x7f.1`` outright;
* :class:`GuardedResolver` is the connector's resolver for host names: it resolves
  through the event loop's ``getaddrinfo``, drops every address the policy refuses
  and hands aiohttp only checked addresses, so the address that is checked is the
  address that is connected to (no DNS-rebinding window).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp.abc import AbstractResolver, ResolveResult

from services.scraper.errors import FetchRefused

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = [
    "AddressPolicy",
    "GuardedResolver",
    "HostRefused",
    "IPAddress",
    "IPNetwork",
    "literal_host_refusal",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT
_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
# What inet_aton() would accept: 1 to 4 parts, each decimal, octal (leading 0) or hex.
_NUMERIC_HOST = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.I)
_RESOLVED_FLAGS = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


class HostRefused(FetchRefused):
    """Every address of a host name is refused (``url`` holds the host name only)."""


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which hosts and addresses may be connected to."""

    enabled: bool = True  # False lets everything through (the guard is off)
    allowed_hosts: frozenset[str] = frozenset()  # lower-case host names let through whatever they resolve to
    allowed_networks: tuple[IPNetwork, ...] = ()  # addresses let through even if not global

    @classmethod
    def from_allow_list(cls, entries: Iterable[str], *, enabled: bool = True) -> AddressPolicy:
        """Build a policy from ``SCRAPER_ALLOW_HOSTS`` entries: host names and/or CIDR networks."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().strip("[]").lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(_idna_host(entry.rstrip(".")))
        return cls(enabled=enabled, allowed_hosts=frozenset(hosts), allowed_networks=tuple(networks))

    def host_allowed(self, host: str) -> bool:
        """True when the host name is explicitly allowed (or the guard is off)."""
        return not self.enabled or _idna_host(host.lower().rstrip(".")) in self.allowed_hosts

    def address_refusal(self, ip: IPAddress) -> str | None:
        """Why connecting to ``ip`` is refused, or None when it is allowed."""
        if not self.enabled:
            return None
        if any(ip.version == net.version and ip in net for net in self.allowed_networks):
            return None
        if isinstance(ip, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(ip)
            if embedded is not None:
                inner = self.address_refusal(embedded)
                if inner is not None:
                    return f"embedding {embedded}, which is {inner}"
                # A mapped or NAT64 address goes where its IPv4 address goes; 6to4 and
                # Teredo relays must themselves be global.
                if ip.ipv4_mapped is None and ip not in _NAT64_PREFIX and not ip.is_global:
                    return "not globally routable"
                return None
        return _category_refusal(ip)


_CATEGORIES: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("an unspecified address", lambda ip: ip.is_unspecified),
    ("a loopback address", lambda ip: ip.is_loopback),
    ("a link-local address", lambda ip: ip.is_link_local),
    ("a multicast address", lambda ip: ip.is_multicast),
    ("in the shared address space 100.64.0.0/10", lambda ip: ip in _SHARED_ADDRESS_SPACE),
    ("a private address", lambda ip: ip.is_private),
    ("a reserved address", lambda ip: ip.is_reserved),
    ("not globally routable", lambda ip: not ip.is_global),
)


def _category_refusal(ip: IPAddress) -> str | None:
    """The first refused category ``ip`` falls in, or None for a global unicast address."""
    return next((name for name, applies in _CATEGORIES if applies(ip)), None)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, Teredo, NAT64)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's (obfuscated) address is where traffic ends up
    if ip in _NAT64_PREFIX:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    value = int(ip)
    if value >> 32 == 0 and value > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(value)
    return None


def _idna_host(host: str) -> str:
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _parse_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def literal_host_refusal(host: str, policy: AddressPolicy) -> str | None:
    """Why a URL host that is an IP address (in any spelling) is refused; None if allowed.

    Host names are not resolved here: :class:`GuardedResolver` checks what they resolve to.
    """
    if not policy.enabled or policy.host_allowed(host):
        return None
    ip = _parse_ip(host)
    if ip is not None:
        reason = policy.address_refusal(ip)
        return None if reason is None else f"{ip} is {reason}"
    if _NUMERIC_HOST.match(host):
        try:
            decoded = ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except (OSError, ValueError):
            return f"{host!r} is a numeric host that is not an IP address"
        reason = policy.address_refusal(decoded)
        suffix = "" if reason is None else f", {reason}"
        return f"{host!r} is a non-canonical spelling of {decoded}{suffix}"
    return None


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that returns only the addresses the policy allows."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host`` and keep only allowed addresses; raise FetchRefused if none is left."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, family=family, flags=socket.AI_ADDRCONFIG
        )
        name_allowed = self._policy.host_allowed(host)
        results: list[ResolveResult] = []
        refusals: list[str] = []
        for info_family, _, proto, _, sockaddr in infos:
            if info_family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = str(sockaddr[0])
            reason = None if name_allowed else self._refusal(address)
            if reason is not None:
                refusals.append(reason)
                continue
            results.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=int(sockaddr[1]),
                    family=info_family,
                    proto=proto,
                    flags=_RESOLVED_FLAGS,
                )
            )
        if not results:
            detail = "; ".join(dict.fromkeys(refusals)) or "no usable address"
            raise HostRefused(host, f"{host} resolves only to refused addresses ({detail})")
        return results

    def _refusal(self, address: str) -> str | None:
        ip = _parse_ip(address)
        if ip is None:
            return f"{address} is not an IP address"
        reason = self._policy.address_refusal(ip)
        return None if reason is None else f"{ip} is {reason}"

    async def close(self) -> None:
        """Nothing to release: resolution goes through the event loop."""
