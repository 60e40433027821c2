"""The real `ancora data-api` process: its batch clock runs on wall time and its state outlives it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from ancora.simulator import EXHAUSTED_DETAIL, INTERNAL_ERROR_BODY
from tests.support.simulator import running_simulator

pytestmark = pytest.mark.integration


def fetch(url: str, group: int = 1) -> httpx.Response:
    return httpx.get(f"{url}/data", params={"group_number": group}, timeout=10)


def test_restarting_the_process_keeps_the_batch_number(tmp_path: Path) -> None:
    with running_simulator(tmp_path, rotation_seconds=1.0, seed=3) as url:
        first = fetch(url)
        assert first.status_code == 200
        assert first.json()["batch_number"] == 1
        assert len(first.json()["data"]) == 200
        time.sleep(1.2)
        assert fetch(url).json()["batch_number"] == 2

    state = json.loads((tmp_path / "data_api" / "state.json").read_text())
    assert state["1"][1] == 2

    with running_simulator(tmp_path, rotation_seconds=3600.0) as url:
        assert fetch(url).json()["batch_number"] == 2
        assert fetch(url, group=2).json()["batch_number"] == 1


def test_the_process_serves_all_batches_then_400(tmp_path: Path) -> None:
    with running_simulator(tmp_path, rotation_seconds=0.05) as url:
        batches = []
        for _ in range(10):
            response = fetch(url)
            assert response.status_code == 200
            batches.append(response.json()["batch_number"])
            time.sleep(0.1)

        exhausted = fetch(url)
        assert exhausted.status_code == 400
        assert exhausted.json() == {"detail": EXHAUSTED_DETAIL}
        restart = httpx.get(f"{url}/restart_data_generation", params={"group_number": 1}, timeout=10)
        assert restart.status_code == 200
        assert fetch(url).json()["batch_number"] == 1

    assert batches == list(range(1, 11))


def test_the_process_defaults_to_the_reference_mode_and_takes_the_intended_one(tmp_path: Path) -> None:
    with running_simulator(tmp_path / "default", rotation_seconds=300) as url:
        failed = fetch(url, group=10)
        assert (failed.status_code, failed.text) == (500, INTERNAL_ERROR_BODY)
    with running_simulator(tmp_path / "intended", rotation_seconds=300, mode="intended") as url:
        served = fetch(url, group=10)
        assert served.status_code == 200
        assert served.json()["batch_number"] == 1 and len(served.json()["data"]) == 200
