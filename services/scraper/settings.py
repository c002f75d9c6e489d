"""Settings of the scraper service: every timeout, limit and switch, with laptop defaults.

The runtime loads them from environment variables named ``SCRAPER_<FIELD_UPPERCASE>``
(tuples comma-separated, e.g. ``SCRAPER_ALLOW_HOSTS=localhost,10.1.0.0/16``).
"""

from __future__ import annotations

import msgspec

__all__ = ["DEFAULT_USER_AGENT", "ScraperSettings"]

DEFAULT_USER_AGENT = "GenAIServicesScraper/0.1 (+https://example.invalid/bot)"


class ScraperSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Configuration of URL finding, fetching, the SSRF guard and the scrape cache."""

    max_urls: int = 10  # URLs taken from one prompt; the rest are ignored
    max_concurrency: int = 8  # pages fetched at once by one process, all hosts together
    per_host_concurrency: int = 2  # requests in flight to one host at once
    connect_timeout_s: float = 5.0  # TCP (+TLS) connection set-up, per request
    read_timeout_s: float = 10.0  # longest silence between two reads of a response
    total_timeout_s: float = 20.0  # one page, all hops and retries, unless the caller's deadline is sooner
    max_redirects: int = 5  # redirects followed per page; each hop is re-checked
    max_body_bytes: int = 5 * 1024 * 1024  # decoded body cap; reading stops past it
    retries: int = 2  # extra attempts on transient failures (connect errors, 429, 502-504)
    retry_backoff_s: float = 0.25  # first retry delay, doubled at every further attempt
    max_retry_after_s: float = 10.0  # a 429/503 Retry-After longer than this is not waited for
    respect_robots: bool = True  # honour robots.txt (fetched once per host and cached)
    robots_cache_ttl_s: float = 3600.0  # how long a host's robots.txt verdict is kept
    robots_max_bytes: int = 512 * 1024  # robots.txt bodies longer than this are cut
    robots_cache_size: int = 1024  # origins whose robots.txt verdict is kept (oldest dropped first)
    user_agent: str = DEFAULT_USER_AGENT  # sent on every request and matched in robots.txt
    allow_hosts: tuple[str, ...] = ()  # host names and/or CIDR networks the SSRF guard lets through
    ssrf_guard: bool = True  # refuse private, loopback, link-local, ... destinations
    cache_ttl_s: float = 3600.0  # how long a scraped page stays in the cache
    cache_timeout_s: float = 0.5  # one cache read or write; a slower one counts as a miss
    max_concurrent_requests: int = 256  # scrape requests handled at once (more queue unseen by the deadline)
    reply_margin_s: float = 0.05  # kept back from the caller's deadline so the reply reaches it in time
    loop_lag_probe_s: float = 0.0  # event-loop lag sampling interval; 0 turns the probe off
    loop_lag_samples: int = 4096  # lag samples kept (the newest) for the stats reply
    extract_workers: int = 2  # processes running HTML main-text extraction
    nats_url: str = "nats://127.0.0.1:4222"  # the bus
