"""Start the gateway: `python -m services.gateway`."""

from __future__ import annotations

import sys

import uvicorn

from runtime.logging import configure_logging, get_logger
from runtime.settings import load_settings
from services.gateway.app import create_app
from services.gateway.auth import ApiKeys, UnsafeBindError, check_bind_is_safe
from services.gateway.settings import GatewaySettings

__all__ = ["main"]


def main() -> None:
    """Read the settings, refuse an unsafe bind, and serve until SIGINT/SIGTERM."""
    settings = load_settings(GatewaySettings, "GATEWAY")
    configure_logging("gateway", level=settings.log_level)
    try:
        check_bind_is_safe(settings, ApiKeys.from_settings(settings))
    except UnsafeBindError as exc:
        get_logger(__name__).error("unsafe bind", detail=str(exc))
        sys.exit(2)
    print(f"gateway: http://{settings.host}:{settings.port}", flush=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # structlog renders uvicorn's records too
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
