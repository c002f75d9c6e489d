"""Worker and API settings: env names, defaults, refusals."""

from __future__ import annotations

import pytest

from runtime.settings import SettingsError, load_settings
from services.gateway.jobs import JobApiSettings
from services.inference.jobs.settings import JobWorkerSettings


def test_worker_settings_come_from_inference_jobs_variables() -> None:
    env = {
        "INFERENCE_JOBS_MAX_IN_FLIGHT": "2",
        "INFERENCE_JOBS_ACK_WAIT_S": "6",
        "INFERENCE_JOBS_ENABLED": "no",
    }
    settings = load_settings(JobWorkerSettings, "INFERENCE_JOBS", env)
    assert settings.max_in_flight == 2 and not settings.enabled
    assert settings.heartbeat_s == 2.0  # capped at a third of ack_wait_s


def test_worker_refuses_a_zero_budget() -> None:
    with pytest.raises(SettingsError):
        load_settings(JobWorkerSettings, "INFERENCE_JOBS", {"INFERENCE_JOBS_MAX_IN_FLIGHT": "0"})


def test_api_settings_come_from_gateway_jobs_variables() -> None:
    settings = load_settings(JobApiSettings, "GATEWAY_JOBS", {"GATEWAY_JOBS_MAX_ITEMS": "5"})
    assert settings.max_items == 5
    assert JobApiSettings().max_items == 1000
