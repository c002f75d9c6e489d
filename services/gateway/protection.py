"""Per-key rate limiting (a Litestar guard) and the caller's tenant.

The guard runs after the API-key guard, so it limits by key id when keys
are on, and by client address when they are off.
"""

from __future__ import annotations

import asyncio

from faststream.nats import NatsBroker
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from nats.errors import Error as NatsError
from nats.js.api import KeyValueConfig, StorageType

from runtime.errors import Unavailable
from runtime.jetstream import open_key_value
from services.gateway.errors import RateLimited
from services.gateway.metrics import GatewayMetrics
from services.gateway.ratelimit import WINDOW_S, RateLimiter
from services.gateway.settings import GatewaySettings
from services.gateway.tenancy import Tenant

__all__ = ["RateLimitGuard", "api_key_id_of", "tenant_of"]


def api_key_id_of(connection: ASGIConnection) -> str | None:  # type: ignore[type-arg]
    """The id of the caller's API key (None when keys are off)."""
    key_id: str | None = connection.scope.get("state", {}).get("api_key_id")
    return key_id


def tenant_of(connection: ASGIConnection) -> Tenant:  # type: ignore[type-arg]
    """The caller's tenant: its key's collections."""
    return Tenant(api_key_id_of(connection))


class RateLimitGuard:
    """Admits each request against its key's window in the shared bucket (off when the limit is 0)."""

    def __init__(self, settings: GatewaySettings, metrics: GatewayMetrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._limiter: RateLimiter | None = None

    def __deepcopy__(self, memo: dict[int, object]) -> RateLimitGuard:
        # Litestar copies route layers when it registers them; the guard is shared, not copied.
        return self

    @property
    def enabled(self) -> bool:
        """Whether a limit is configured."""
        return self._settings.rate_limit_per_minute > 0

    async def start(self, broker: NatsBroker) -> None:
        """Open (or create) the shared bucket; call once the broker is connected."""
        if not self.enabled:
            return
        settings = self._settings
        js = broker.connection.jetstream(timeout=settings.documents_timeout_s)
        config = KeyValueConfig(
            bucket=settings.rate_limit_bucket, ttl=2 * WINDOW_S, storage=StorageType.MEMORY
        )
        bucket = await open_key_value(js, config)
        self._limiter = RateLimiter(
            bucket, settings.rate_limit_per_minute, max_attempts=settings.rate_limit_max_attempts
        )

    async def __call__(self, connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
        """Litestar guard: 429 with `Retry-After` once the caller's window is used up."""
        await self.admit(connection)

    async def admit(self, connection: ASGIConnection) -> None:  # type: ignore[type-arg]
        """Count one request of the connection's caller: `RateLimited` once its window is used up.

        The guard counts each HTTP request (a WebSocket's handshake is one); a
        WebSocket counts each further chat it carries here, so a socket is no way
        around the limit.
        """
        if self._limiter is None:
            return
        client = api_key_id_of(connection)
        if client is None:
            client = f"ip-{connection.client.host if connection.client else 'unknown'}"
        try:
            async with asyncio.timeout(self._settings.documents_timeout_s):
                await self._limiter.admit(client)
        except RateLimited:
            self._metrics.rate_limited.inc()
            raise
        except (NatsError, TimeoutError) as exc:
            self._metrics.upstream_errors.labels(service="nats").inc()
            raise Unavailable(f"rate limiter unavailable ({type(exc).__name__})") from exc
