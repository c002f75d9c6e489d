"""Start the rag service: `python -m services.rag`."""

from __future__ import annotations

from runtime.bus import make_broker
from runtime.service import ServiceParts, add_health, serve
from services.rag.collection_models import CollectionModels
from services.rag.embeddings import BusEmbedder
from services.rag.handlers import DocumentService, register_handlers
from services.rag.retrieval import Retriever
from services.rag.settings import RagSettings
from services.rag.store import open_store

__all__ = ["build", "main"]


def build(settings: RagSettings) -> ServiceParts:
    """The broker with the rag handlers, the passage store and the ingestion workers."""
    broker = make_broker(settings.nats_url, "rag")
    # Two embedders, so that queries never wait behind a document's batches.
    document_embedder = BusEmbedder(
        broker,
        batch_size=settings.embed_batch_size,
        timeout_s=settings.embed_timeout_s,
        max_concurrent_batches=settings.embed_max_concurrent_batches,
        priority="batch",  # ingestion yields Triton to chat queries
    )
    query_embedder = BusEmbedder(
        broker,
        batch_size=1,
        timeout_s=settings.embed_timeout_s,
        max_concurrent_batches=settings.retrieve_concurrency,
    )
    store = open_store(settings)  # connects lazily, on first use
    # Opened with the other buckets, in start_documents.
    models = CollectionModels(store, cache_s=settings.collection_model_cache_s)
    retriever = Retriever(
        store,
        query_embedder,
        models,
        k_max=settings.retrieve_k_max,
        max_query_chars=settings.max_query_chars,
    )
    documents = DocumentService(settings, store=store, embedder=document_embedder, models=models)
    register_handlers(broker, retriever, documents, settings)
    add_health(broker, "rag")

    async def start_documents() -> None:
        await documents.start(await broker.connect())

    return ServiceParts(
        broker,
        on_startup=[start_documents],
        before_stop=[documents.stop_ingesting],
        after_stop=[documents.stop, store.close],
    )


def main() -> None:
    """Serve retrieval and ingestion until SIGINT/SIGTERM."""
    serve("rag", RagSettings, build)


if __name__ == "__main__":
    main()
