"""Start the inference service: `python -m services.inference`."""

from __future__ import annotations

from runtime.bus import make_broker
from runtime.logging import configure_logging
from runtime.service import ServiceParts, add_health, run_service
from runtime.settings import load_settings
from services.inference.handlers import Generations, register_handlers
from services.inference.settings import InferenceSettings
from services.inference.triton_client import TritonModels


def build(settings: InferenceSettings) -> ServiceParts:
    """The broker with the inference handlers, and what to close on shutdown."""
    broker = make_broker(settings.nats_url, "inference")
    models = TritonModels(settings)
    generations = Generations(broker, models)
    register_handlers(broker, models, generations, settings)

    async def triton_checks() -> dict[str, bool]:
        ready = await models.ready()
        checks = {f"triton.{name}": ok for name, ok in ready.items()}
        return {"triton": bool(ready) and all(ready.values()), **checks}

    add_health(broker, "inference", triton_checks)
    return ServiceParts(broker, before_stop=[generations.stop_all], after_stop=[models.close])


def main() -> None:
    """Serve the inference subjects until SIGINT/SIGTERM."""
    settings = load_settings(InferenceSettings, "INFERENCE")
    configure_logging("inference")
    run_service(lambda: build(settings))


if __name__ == "__main__":
    main()
