"""Settings from environment variables into one msgspec Struct per service."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

import msgspec

__all__ = ["SettingsError", "load_settings"]

S = TypeVar("S", bound=msgspec.Struct)


class SettingsError(ValueError):
    """An environment variable holds a value its setting cannot take."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def load_settings(settings_type: type[S], prefix: str, environ: Mapping[str, str] | None = None) -> S:
    """Build `settings_type` from `<PREFIX>_<FIELD>` variables; defaults fill the rest.

    Tuples and lists are read as comma-separated values; booleans accept
    1/0, true/false, yes/no, on/off.
    """
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for field in msgspec.structs.fields(settings_type):
        name = f"{prefix}_{field.name}".upper()
        if name in env:
            raw[field.name] = _parse(env[name], field.type)
    try:
        return msgspec.convert(raw, settings_type, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"bad setting for {prefix.upper()}_*: {exc}") from exc


def _parse(value: str, annotation: object) -> object:
    text = str(annotation)
    if text.startswith(("tuple", "list")) or "tuple[" in text or "list[" in text:
        return [item.strip() for item in value.split(",") if item.strip()]
    if annotation is bool or text == "bool":
        lowered = value.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off", ""}:
            return False
    return value
