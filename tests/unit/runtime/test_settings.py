"""Settings come from environment variables, with clear errors for bad values."""

from __future__ import annotations

import msgspec
import pytest

from runtime.settings import SettingsError, load_settings


class Example(msgspec.Struct, frozen=True, kw_only=True):
    port: int = 8000
    timeout_s: float = 1.5
    hosts: tuple[str, ...] = ()
    verbose: bool = False
    name: str = "x"


def test_defaults_when_unset() -> None:
    assert load_settings(Example, "EX", environ={}) == Example()


def test_values_are_converted() -> None:
    env = {"EX_PORT": "9000", "EX_TIMEOUT_S": "0.25", "EX_HOSTS": "a, b,,c", "EX_VERBOSE": "yes"}
    settings = load_settings(Example, "EX", environ=env)
    assert settings == Example(port=9000, timeout_s=0.25, hosts=("a", "b", "c"), verbose=True)


def test_other_prefixes_are_ignored() -> None:
    assert load_settings(Example, "EX", environ={"OTHER_PORT": "1"}).port == 8000


def test_bad_value_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="port"):
        load_settings(Example, "EX", environ={"EX_PORT": "eighty"})
