"""The scraper's bus subscribers (thin: decode, call, encode).

``scrape`` is handled by up to ``max_concurrent_requests`` tasks at once per process
(FastStream's default is one message at a time, which would queue every request behind
the slowest page). ``scraper.stats`` reports the event-loop lag the probe measured, so a
benchmark can read it from inside the service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proto.stats import LoopLagStats, StatsRequest
from proto.subjects import SCRAPE, SCRAPER_STATS
from runtime.service import answer_requests

if TYPE_CHECKING:
    from faststream.nats import NatsBroker

    from runtime.looplag import LoopLagProbe
    from services.scraper.scrape import Scraper
    from services.scraper.settings import ScraperSettings

__all__ = ["register_handlers"]


def register_handlers(
    broker: NatsBroker, scraper: Scraper, settings: ScraperSettings, probe: LoopLagProbe
) -> None:
    """Subscribe `scrape` and `scraper.stats` (one queue group across replicas)."""

    async def stats(request: StatsRequest) -> LoopLagStats:
        figures = probe.stats()
        if request.reset:
            probe.reset()
        return figures

    answer_requests(broker, "scraper", SCRAPE, scraper.scrape, max_workers=settings.max_concurrent_requests)
    answer_requests(broker, "scraper", SCRAPER_STATS, stats)
