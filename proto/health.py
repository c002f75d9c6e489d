"""Health checks: every service answers on `health_subject(name)`."""

from __future__ import annotations

import msgspec

from proto.common import Message

__all__ = ["HealthReply", "HealthRequest"]


class HealthRequest(Message, tag="health.request"):
    """Are you ready?"""


class HealthReply(Message, tag="health.reply"):
    """A service's readiness and what it depends on (e.g. Triton's models)."""

    service: str
    ready: bool
    checks: dict[str, bool] = msgspec.field(default_factory=dict)
    detail: str = ""
