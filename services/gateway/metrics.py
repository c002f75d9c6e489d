"""Prometheus metrics of one gateway process, in a registry of its own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from proto.chat import ChatAnswer
from runtime.bus import BusError
from runtime.errors import ServiceError
from services.gateway.errors import http_status

__all__ = ["CONTENT_TYPE", "GatewayMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_UPSTREAMS = ("inference", "rag", "scraper")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class GatewayMetrics:
    """Requests by route and status, their latency, streams in flight, upstream errors, tokens."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_requests",
            "HTTP requests and WebSocket sessions by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds",
            "Time to the end of the response (a stream's whole length)",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.streams = Gauge(
            "gateway_streams_in_flight",
            "Chat streams (SSE, WebSocket, OpenAI) being answered now",
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors",
            "Failures of the services behind the gateway, by service",
            ["service"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "gateway_rate_limited", "Requests refused with 429", registry=self.registry
        )
        self.tokens = Counter(
            "gateway_tokens",
            "Tokens of answered chats as the model counts them, by tenant (k<key id>, or open) and kind",
            ["tenant", "kind"],
            registry=self.registry,
        )

    def count_answer(self, answer: ChatAnswer, tenant: str) -> None:
        """Count an answered chat: its tokens, and the enrichers that failed it."""
        self.tokens.labels(tenant=tenant, kind="prompt").inc(answer.prompt_tokens)
        self.tokens.labels(tenant=tenant, kind="completion").inc(answer.completion_tokens)
        # an enricher's error starts with the service's name
        for error in answer.context_errors:
            service = error.split(":", 1)[0]
            if service in ("scraper", "rag"):
                self.upstream_errors.labels(service=service).inc()

    def count_failure(self, exc: ServiceError) -> None:
        """Count a request or stream failed by a server-side error against the service behind it."""
        if http_status(exc.code) < 500:
            return
        if isinstance(exc, BusError):
            upstream = exc.service
        else:  # the gateway's own: its detail starts with the service it waited for, if any
            upstream = next((name for name in _UPSTREAMS if exc.detail.startswith(name)), "nats")
        self.upstream_errors.labels(service=upstream).inc()

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
