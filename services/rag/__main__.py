"""Start the rag service: `python -m services.rag`."""

from __future__ import annotations

from runtime.bus import make_broker
from runtime.logging import configure_logging
from runtime.service import ServiceParts, add_health, run_service
from runtime.settings import load_settings
from services.rag.embeddings import BusEmbedder
from services.rag.handlers import register_handlers
from services.rag.retrieval import Retriever
from services.rag.settings import RagSettings
from services.rag.store import open_store


def build(settings: RagSettings) -> ServiceParts:
    """The broker with the rag handlers and the passage store."""
    broker = make_broker(settings.nats_url, "rag")
    embedder = BusEmbedder(broker, batch_size=32, timeout_s=30.0, max_concurrent_batches=4)
    store = open_store(settings)  # connects lazily, on first use
    retriever = Retriever(store, embedder, k_max=settings.retrieve_k_max)
    register_handlers(broker, retriever)
    add_health(broker, "rag")
    return ServiceParts(broker, after_stop=[store.close])


def main() -> None:
    """Serve retrieval (and ingestion) until SIGINT/SIGTERM."""
    settings = load_settings(RagSettings, "RAG")
    configure_logging("rag")
    run_service(lambda: build(settings))


if __name__ == "__main__":
    main()
