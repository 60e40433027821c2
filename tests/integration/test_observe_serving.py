"""What is served, observed: the prediction log of a real inference process, and a rollback under
load that the service follows within its poll interval (real MLflow server, real HTTP)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest

from ancora.monitoring.store import open_monitoring_store
from ancora.schema import FEATURE_NAMES
from tests.support.inference import log_covertype_model, register, running_inference, wait_ready
from tests.support.mlflow_server import MlflowServer, mlflow_server

POLL_SECONDS = 1.0


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, covertype_csv: Path) -> Iterator[MlflowServer]:
    data = pd.read_csv(covertype_csv)
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as server:
        first = log_covertype_model(server.uri, data.iloc[:2000], n_estimators=10, seed=0)
        second = log_covertype_model(server.uri, data.iloc[2000:4000], n_estimators=10, seed=1)
        client = mlflow.MlflowClient(server.uri)
        for logged, decision in ((first, "first"), (second, "promoted")):
            version = register(server.uri, "covertype", logged, alias="champion")
            client.set_model_version_tag("covertype", version, "gate_decision", decision)
        yield server


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, registry: MlflowServer) -> Iterator[tuple[str, Path]]:
    state = tmp_path_factory.mktemp("inference")
    with running_inference(state, registry.uri, poll_seconds=POLL_SECONDS) as url:
        wait_ready(url, timeout=180)
        yield url, state


def rows(covertype_csv: Path, count: int) -> list[dict[str, str]]:
    frame = pd.read_csv(covertype_csv, dtype=str).iloc[5000 : 5000 + count]
    return frame[list(FEATURE_NAMES)].to_dict("records")  # type: ignore[no-any-return]


def test_every_prediction_is_logged_with_its_request_id_user_and_answer(
    service: tuple[str, Path], covertype_csv: Path
) -> None:
    url, state = service
    sample = rows(covertype_csv, 30)
    with httpx.Client(base_url=url, timeout=30) as client:
        one = client.post(
            "/predict", json=sample[0], headers={"X-Request-ID": "req-one", "X-Ancora-User": "ada"}
        )
        assert one.status_code == 200 and one.json()["request_id"] == "req-one"
        assert one.headers["x-request-id"] == "req-one"
        hostile = client.post(
            "/predict", json=sample[1], headers={"X-Request-ID": ("x" * 500 + "\u00e9").encode("latin-1")}
        )
        assert hostile.status_code == 200 and len(hostile.json()["request_id"]) == 32, (
            "a new id, not the echo"
        )
        long_user = client.post("/predict", json=sample[1], headers={"X-Ancora-User": "u" * 5000})
        assert long_user.status_code == 200
        batch = client.post("/predict/batch", json=sample[2:])
        assert batch.status_code == 200
        batch_id = batch.json()["request_id"]
        deadline = time.monotonic() + 20
        metrics = ""
        while time.monotonic() < deadline:
            metrics = client.get("/metrics").text
            if 'ancora_inference_prediction_log_rows_total{outcome="written"} 31.0' in metrics:
                break
            time.sleep(0.2)
    assert 'ancora_inference_prediction_log_rows_total{outcome="written"} 31.0' in metrics
    assert 'ancora_inference_prediction_log_rows_total{outcome="dropped_queue_full"} 0.0' in metrics
    store = open_monitoring_store(f"sqlite:///{state / 'dispatch' / 'events.db'}")
    logged = store.predictions(
        datetime.now(UTC) - timedelta(minutes=10), datetime.now(UTC) + timedelta(minutes=1)
    )
    mine = logged[logged["request_id"] == "req-one"].iloc[0]
    assert (mine["username"], mine["route"], mine["model_version"]) == ("ada", "/predict", "2")
    assert mine["predicted_class"] == one.json()["prediction"]
    assert mine["probability"] == pytest.approx(max(one.json()["probabilities"].values()))
    assert str(mine["Soil_Type"]) == sample[0]["Soil_Type"] and mine["latency_ms"] > 0
    assert (logged["request_id"] == batch_id).sum() == 28
    assert logged["username"].str.len().max() == 150, "a long user header is cut, not a failed write"


def test_a_rollback_under_load_is_followed_within_the_poll_interval_and_recorded(
    service: tuple[str, Path], registry: MlflowServer, covertype_csv: Path, tmp_path: Path
) -> None:
    url, _ = service
    sample = rows(covertype_csv, 50)
    failures: list[str] = []
    versions: list[tuple[float, str]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            number = 0
            while not stop.is_set():
                answer = client.post("/predict", json=sample[number % len(sample)])
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")
                else:
                    versions.append((time.monotonic(), answer.json()["model_version"]))
                number += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        env = {"ANCORA_MLFLOW_TRACKING_URI": registry.uri, "ANCORA_STATE_DIR": str(tmp_path)}
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ancora",
                "model",
                "rollback",
                "--reason",
                "v2 misclassifies pines",
                "--by",
                "ops",
            ],
            env={**_base_env(), **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        rolled_at = time.monotonic()  # the alias moved just before the command returned
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert (answer["from_version"], answer["to_version"]) == ("2", "1")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(v == "1" and t > rolled_at for t, v in versions):
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    first_served = min(t for t, v in versions if v == "1" and t > rolled_at)
    load_seconds = float(httpx.get(f"{url}/models", timeout=10).json().get("load_seconds") or 0.0)
    assert first_served - rolled_at <= POLL_SECONDS + load_seconds + 3.0, (
        "the CLI's own start-up is in the margin"
    )
    assert all(v == "1" for t, v in versions if t > first_served), "no request went back to v2"
    client = mlflow.MlflowClient(registry.uri)
    demoted, restored = client.get_model_version("covertype", "2"), client.get_model_version("covertype", "1")
    assert demoted.tags["ancora.rolled_back.by"] == "ops"
    assert demoted.tags["ancora.rolled_back.reason"] == "v2 misclassifies pines"
    assert restored.tags["ancora.restored.from_version"] == "2"
    again = subprocess.run(
        [sys.executable, "-m", "ancora", "model", "rollback", "--reason", "again"],
        env={**_base_env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 2 and "no earlier champion" in again.stderr


def _base_env() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if not key.startswith("ANCORA_")}
