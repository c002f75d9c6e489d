"""The scraper's bus subscribers: thin, they decode, call, encode."""

from __future__ import annotations

from faststream.nats import NatsBroker

from proto.context import ScrapeReply, ScrapeRequest
from proto.subjects import SCRAPE
from runtime.bus import queue_group
from services.scraper.scrape import Scraper

__all__ = ["register_handlers"]


def register_handlers(broker: NatsBroker, scraper: Scraper) -> None:
    """Subscribe `scrape` (one queue group across replicas)."""

    @broker.subscriber(SCRAPE, queue_group("scraper"), title="scrape")
    async def scrape(request: ScrapeRequest) -> ScrapeReply:
        return await scraper.scrape(request)
