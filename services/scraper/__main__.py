"""Start the scraper service: `python -m services.scraper`."""

from __future__ import annotations

from htmltext.pool import ExtractorPool
from proto.subjects import SCRAPE_CACHE_BUCKET
from runtime.bus import make_broker
from runtime.looplag import LoopLagProbe
from runtime.service import ServiceParts, add_health, serve
from services.scraper.cache import PageCache
from services.scraper.fetch import PageFetcher
from services.scraper.handlers import register_handlers
from services.scraper.scrape import Scraper
from services.scraper.settings import ScraperSettings

__all__ = ["build", "main"]


def build(settings: ScraperSettings) -> ServiceParts:
    """The broker with the scrape handler, its resources and their start/stop."""
    broker = make_broker(settings.nats_url, "scraper")
    fetcher = PageFetcher(settings)
    extractor = ExtractorPool(workers=settings.extract_workers)
    scraper = Scraper(settings, fetcher, extractor)
    probe = LoopLagProbe(settings.loop_lag_probe_s, settings.loop_lag_samples)
    register_handlers(broker, scraper, settings, probe)
    add_health(broker, "scraper")

    async def open_resources() -> None:
        await fetcher.__aenter__()
        bucket = await broker.key_value(SCRAPE_CACHE_BUCKET, ttl=settings.cache_ttl_s)
        scraper.use_cache(PageCache(bucket, timeout_s=settings.cache_timeout_s))
        probe.start()

    async def finish_cache_writes() -> None:
        await scraper.close()

    async def close_resources() -> None:
        await probe.stop()
        await fetcher.close()
        extractor.close()

    return ServiceParts(
        broker,
        on_startup=[open_resources],
        before_stop=[finish_cache_writes],
        after_stop=[close_resources],
    )


def main() -> None:
    """Serve `scrape` until SIGINT/SIGTERM."""
    serve("scraper", ScraperSettings, build)


if __name__ == "__main__":
    main()
