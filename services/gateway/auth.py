"""API keys: kept only as SHA-256 hashes, checked on every `/v1/*` route."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from pathlib import Path

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

from services.gateway.settings import GatewaySettings

__all__ = ["ApiKeys", "UnsafeBindError", "check_bind_is_safe"]


class UnsafeBindError(RuntimeError):
    """The gateway would listen beyond loopback with no API keys."""


class ApiKeys:
    """The accepted keys, as hashes; empty means authentication is off."""

    def __init__(self, keys: list[str]) -> None:
        self._hashes = frozenset(_hash(key) for key in keys if key)

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> ApiKeys:
        """Keys from `GATEWAY_API_KEYS` and the secrets file `GATEWAY_API_KEYS_FILE`."""
        keys = list(settings.api_keys)
        if settings.api_keys_file:
            lines = Path(settings.api_keys_file).read_text(encoding="utf-8").splitlines()
            keys.extend(line.strip() for line in lines if line.strip() and not line.startswith("#"))
        return cls(keys)

    @property
    def enabled(self) -> bool:
        """Whether any key is configured."""
        return bool(self._hashes)

    def key_id(self, key: str) -> str | None:
        """A stable, non-secret id of a valid key (for rate limits and logs), else None."""
        digest = _hash(key)
        for known in self._hashes:
            if hmac.compare_digest(known, digest):
                return known[:16]
        return None

    def guard(self, connection: ASGIConnection, route: BaseRouteHandler) -> None:  # type: ignore[type-arg]
        """Litestar guard: 401 unless the request carries `Authorization: Bearer <key>`."""
        if not self.enabled:
            return
        scheme, _sep, key = connection.headers.get("authorization", "").partition(" ")
        key_id = self.key_id(key.strip()) if scheme.lower() == "bearer" else None
        if key_id is None:
            raise NotAuthorizedException(
                detail="missing or invalid API key: send 'Authorization: Bearer <key>'"
            )
        connection.scope["state"]["api_key_id"] = key_id


def check_bind_is_safe(settings: GatewaySettings, keys: ApiKeys) -> None:
    """Refuse to listen beyond loopback without API keys."""
    if keys.enabled or _is_loopback(settings.host):
        return
    raise UnsafeBindError(
        f"refusing to listen on {settings.host} without API keys: set GATEWAY_API_KEYS "
        "(or GATEWAY_API_KEYS_FILE), or bind to 127.0.0.1"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
