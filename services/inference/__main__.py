"""Start the inference service: `python -m services.inference`."""

from __future__ import annotations

from runtime.bus import make_broker
from runtime.service import Hook, ServiceParts, add_health, serve
from runtime.settings import load_settings
from services.inference.handlers import Generations, register_handlers
from services.inference.jobs.settings import JobWorkerSettings
from services.inference.jobs.worker import JobWorker
from services.inference.settings import InferenceSettings
from services.inference.triton_client import TritonModels

__all__ = ["build", "main"]


def build(settings: InferenceSettings, job_settings: JobWorkerSettings | None = None) -> ServiceParts:
    """The broker with the inference handlers and the batch-job worker, and what to close on shutdown."""
    jobs = job_settings or JobWorkerSettings()
    broker = make_broker(settings.nats_url, "inference")
    models = TritonModels(settings)
    generations = Generations(broker, models)
    register_handlers(broker, models, generations, settings)
    worker = JobWorker(models, jobs)

    async def start_jobs() -> None:
        await worker.start(broker.connection)

    async def readiness() -> dict[str, bool]:
        ready = await models.ready()
        checks = {f"triton.{name}": ok for name, ok in ready.items()}
        checks = {"triton": bool(ready) and all(ready.values()), **checks}
        if jobs.enabled:
            checks["jobs"] = worker.running
        return checks

    add_health(broker, "inference", readiness)
    on_startup: list[Hook] = [start_jobs] if jobs.enabled else []
    before_stop: list[Hook] = [worker.stop, generations.stop_all] if jobs.enabled else [generations.stop_all]
    return ServiceParts(broker, on_startup=on_startup, before_stop=before_stop, after_stop=[models.close])


def main() -> None:
    """Serve the inference subjects and work batch jobs until SIGINT/SIGTERM."""
    job_settings = load_settings(JobWorkerSettings, "INFERENCE_JOBS")
    serve("inference", InferenceSettings, lambda settings: build(settings, job_settings))


if __name__ == "__main__":
    main()
