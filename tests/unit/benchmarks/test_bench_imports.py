"""Every benchmark module imports on a machine set up by `./dev` alone (the lock has what they need)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import bench
import bench.baseline

MODULES = sorted(
    f"{package.__name__}.{info.name}"
    for package in (bench, bench.baseline)
    for info in pkgutil.iter_modules(package.__path__)
)


@pytest.mark.parametrize("name", MODULES)
def test_the_benchmark_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_every_area_of_just_bench_has_a_run_function() -> None:
    from bench.__main__ import AREAS

    for area in AREAS:
        assert callable(importlib.import_module(f"bench.{area}").run), area
