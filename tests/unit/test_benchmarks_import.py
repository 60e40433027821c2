"""The benchmarks are scripts nobody runs in CI: at least they import, and the files they read exist."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.support.repo import REPO_ROOT

BENCHMARKS = sorted(path.stem for path in (REPO_ROOT / "benchmarks").glob("*.py") if path.stem != "__init__")


@pytest.mark.parametrize("name", BENCHMARKS)
def test_each_benchmark_imports_and_its_input_files_exist(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    inputs = {
        attribute: value
        for attribute, value in vars(module).items()
        if attribute.isupper() and isinstance(value, Path) and value.suffix == ".csv"
    }
    for attribute, path in inputs.items():
        assert path.is_file(), f"benchmarks/{name}.py: {attribute} = {path} does not exist"
