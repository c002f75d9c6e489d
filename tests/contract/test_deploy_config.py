"""The Swarm stack names only settings that exist, and every service it runs exists."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import yaml

from services.gateway.settings import GatewaySettings
from services.inference.settings import InferenceSettings
from services.rag.settings import RagSettings
from services.scraper.settings import ScraperSettings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS: dict[str, type[msgspec.Struct]] = {
    "GATEWAY": GatewaySettings,
    "SCRAPER": ScraperSettings,
    "RAG": RagSettings,
    "INFERENCE": InferenceSettings,
}


def test_stack_environment_names_real_settings() -> None:
    stack = yaml.safe_load((ROOT / "deploy/swarm/stack.yml").read_text())
    for name, service in stack["services"].items():
        command = service.get("command", [])
        if "-m" in command:
            module = command[command.index("-m") + 1]
            assert (ROOT / module.replace(".", "/") / "__main__.py").exists(), name
        for variable in service.get("environment", {}):
            prefix, _, field = variable.partition("_")
            if prefix in SETTINGS:
                fields = {f.name for f in msgspec.structs.fields(SETTINGS[prefix])}
                assert field.lower() in fields, f"{name}: {variable} is not a setting"


def test_settings_doc_documents_every_setting() -> None:
    settings_doc = (ROOT / "docs" / "settings.md").read_text()
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", settings_doc))
    missing = [
        f"{prefix}_{field.name.upper()}"
        for prefix, settings in SETTINGS.items()
        for field in msgspec.structs.fields(settings)
        if f"{prefix}_{field.name.upper()}" not in documented
    ]
    assert not missing, f"settings missing from docs/settings.md (run `just docs`): {missing}"
