"""The inference API against a real MLflow server and real registered models.

One MLflow server and one service per module keep the run short; the tests that move an alias or
stop the registry get their own registered name or their own server.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from ancora.schema import COLUMN_NAMES, COVER_TYPE_NAMES, FEATURE_NAMES
from tests.support.inference import (
    LoggedModel,
    log_covertype_model,
    register,
    running_inference,
    wait_ready,
)
from tests.support.mlflow_server import MlflowServer, mlflow_server
from tests.support.served_app import read_until_closed

pytestmark = pytest.mark.integration

TOKEN = "integration-admin-token"
BATCH_LIMIT = 500


@dataclass(frozen=True)
class Registry:
    server: MlflowServer
    first: LoggedModel
    second: LoggedModel

    @property
    def uri(self) -> str:
        return self.server.uri


@pytest.fixture(scope="module")
def data(covertype_csv: Path) -> pd.DataFrame:
    return pd.read_csv(covertype_csv, nrows=6400)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, data: pd.DataFrame) -> Iterator[Registry]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as server:
        first = log_covertype_model(server.uri, data.iloc[:3000], n_estimators=20, seed=0)
        second = log_covertype_model(server.uri, data.iloc[3000:6000], n_estimators=20, seed=1)
        register(server.uri, "covertype", first, alias="champion")
        yield Registry(server, first, second)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Iterator[str]:
    state = tmp_path_factory.mktemp("inference")
    extra = {"ANCORA_INFERENCE_BATCH_MAX_ROWS": str(BATCH_LIMIT)}
    with running_inference(state, registry.uri, admin_token=TOKEN, extra_env=extra) as url:
        wait_ready(url)
        yield url


@pytest.fixture(scope="module")
def holdout(data: pd.DataFrame) -> pd.DataFrame:
    return data.iloc[6000:6200].reset_index(drop=True)


def _load(registry: Registry, logged: LoggedModel) -> Any:
    mlflow.set_tracking_uri(registry.uri)
    try:
        return mlflow.sklearn.load_model(logged.model_uri)
    finally:
        mlflow.set_tracking_uri(None)


def _raw(rows: pd.DataFrame) -> list[dict[str, str]]:
    """The data API's format: every value a string."""
    records: list[dict[str, str]] = rows[list(FEATURE_NAMES)].astype(str).to_dict("records")
    return records


def test_single_batch_and_csv_predictions_match_the_registered_version(
    service: str, registry: Registry, holdout: pd.DataFrame
) -> None:
    model = _load(registry, registry.first)
    features = holdout[list(FEATURE_NAMES)]
    expected = model.predict(features).tolist()
    expected_proba = model.predict_proba(features)
    raw = _raw(holdout)

    with httpx.Client(base_url=service, timeout=30) as client:
        for i in range(20):
            body = client.post("/predict", json=raw[i]).raise_for_status().json()
            assert body["prediction"] == expected[i]
            assert body["class_name"] == COVER_TYPE_NAMES[expected[i]]
            assert body["model_name"] == "covertype"
            assert body["model_version"] == "1"
            assert body["run_id"] == registry.first.run_id
            probabilities = [body["probabilities"][str(label)] for label in model.classes_]
            np.testing.assert_allclose(probabilities, expected_proba[i])

        batch = client.post("/predict/batch", json=raw).raise_for_status().json()
        assert batch["count"] == len(raw)
        assert [p["prediction"] for p in batch["predictions"]] == expected

        csv_text = holdout[list(COLUMN_NAMES)].to_csv(index=False)
        response = client.post("/predict/batch", content=csv_text, headers={"content-type": "text/csv"})
        assert [p["prediction"] for p in response.raise_for_status().json()["predictions"]] == expected


def test_bad_input_is_refused_with_the_field_named_and_never_a_500(
    service: str, holdout: pd.DataFrame
) -> None:
    row = _raw(holdout)[0]
    with httpx.Client(base_url=service, timeout=30) as client:
        for field, value in [("Elevation", "high"), ("Slope", 400), ("Soil_Type", "C0000")]:
            response = client.post("/predict", json={**row, field: value})
            assert response.status_code == 422
            assert response.json()["detail"][0]["loc"] == ["body", field]
        missing = {k: v for k, v in row.items() if k != "Aspect"}
        assert client.post("/predict", json=missing).json()["detail"][0]["loc"] == ["body", "Aspect"]

        response = client.post("/predict/batch", json=[row, {**row, "Wilderness_Area": "Mars"}])
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", 1, "Wilderness_Area"]

        header = ",".join(name.lower() if name == "Slope" else name for name in FEATURE_NAMES)
        response = client.post("/predict/batch", content=f"{header}\n", headers={"content-type": "text/csv"})
        assert response.status_code == 422
        assert "missing columns: Slope" in response.json()["detail"][0]["msg"]
        assert "unexpected columns: slope" in response.json()["detail"][0]["msg"]

        assert client.post("/predict/batch", json=[row] * (BATCH_LIMIT + 1)).status_code == 413
        assert (
            client.post(
                "/predict/batch", content=b"{", headers={"content-type": "application/json"}
            ).status_code
            == 422
        )
        assert (
            client.post("/predict/batch", content=b"x", headers={"content-type": "text/plain"}).status_code
            == 415
        )


def test_models_and_metrics_describe_the_served_version(service: str, registry: Registry) -> None:
    with httpx.Client(base_url=service, timeout=30) as client:
        models = client.get("/models").raise_for_status().json()
        assert models | {"loaded_at": None, "load_seconds": None, "last_check_at": None} == models | {
            "name": "covertype",
            "alias": "champion",
            "version": "1",
            "run_id": registry.first.run_id,
            "registry_uri": registry.uri,
            "status": "serving",
            "loaded_at": None,
            "load_seconds": None,
            "last_check_at": None,
        }
        metrics = client.get("/metrics").text
    assert 'ancora_inference_model_version{alias="champion",name="covertype"} 1.0' in metrics
    assert 'ancora_inference_requests_total{method="POST",route="/predict",status="200"}' in metrics
    assert "ancora_inference_predictions_total{" in metrics
    assert 'ancora_inference_reload_failures_total{kind="load"} 0.0' in metrics


def test_without_a_champion_the_service_waits_and_says_so(tmp_path: Path, registry: Registry) -> None:
    name = "covertype-no-champion"
    with (
        running_inference(tmp_path, registry.uri, model_name=name, poll_seconds=60, admin_token=TOKEN) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        deadline = time.monotonic() + 30
        while client.get("/models").json()["last_check_at"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert f"'{name}' has the alias 'champion'" in ready.json()["detail"]
        predict = client.post("/predict", json={})
        assert predict.status_code == 503 or predict.status_code == 422
        assert client.post("/predict/batch", json=[]).status_code == 503

        assert client.post("/reload").status_code == 401
        assert client.post("/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
        register(registry.uri, name, registry.first, alias="champion")
        reload = client.post("/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert reload.json() == {"changed": True, "model_version": "1", "error": None}
        assert client.get("/ready").status_code == 200


@pytest.mark.parametrize("http_workers", [1, 2])
def test_moving_the_alias_under_load_swaps_within_a_poll_and_fails_no_request(
    tmp_path: Path, registry: Registry, holdout: pd.DataFrame, http_workers: int
) -> None:
    """With two HTTP workers each swaps on its own poll: the load runs until no old answer came for a
    second, and the last old answer must still be within a poll (and a load) of the move."""
    name = f"covertype-hot-{http_workers}"
    register(registry.uri, name, registry.first, alias="champion")
    new_version = register(registry.uri, name, registry.second)
    poll = 1.0
    row = _raw(holdout)[0]
    extra = {"ANCORA_SERVING_HTTP_WORKERS": str(http_workers)}
    with running_inference(
        tmp_path, registry.uri, model_name=name, poll_seconds=poll, extra_env=extra
    ) as url:
        if http_workers > 1:
            _wait_for_versions(url, name, "1", workers=http_workers, timeout=120)
        wait_ready(url)
        moved = threading.Event()
        moved_at: list[float] = []

        def move_alias() -> None:
            mlflow.MlflowClient(registry.uri).set_registered_model_alias(name, "champion", new_version)
            moved_at.append(time.monotonic())
            moved.set()

        async def load() -> list[tuple[float, float, int, str | None]]:
            results: list[tuple[float, float, int, str | None]] = []
            stop_at: list[float] = []

            async def worker(client: httpx.AsyncClient) -> None:
                while not stop_at or time.monotonic() < stop_at[0]:
                    sent = time.monotonic()
                    response = await client.post("/predict", json=row)
                    version = response.json().get("model_version") if response.status_code == 200 else None
                    results.append((sent, time.monotonic(), response.status_code, version))

            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                workers = [asyncio.create_task(worker(client)) for _ in range(8)]
                await asyncio.sleep(1.5)
                await asyncio.to_thread(move_alias)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    new = [received for _, received, _, version in results if version == new_version]
                    old = [received for _, received, _, version in results if version != new_version]
                    if new and time.monotonic() - max([min(new), *old]) > 1.0:
                        break
                    await asyncio.sleep(0.05)
                stop_at.append(time.monotonic())
                await asyncio.gather(*workers)
            return results

        results = asyncio.run(load())
        load_seconds = httpx.get(f"{url}/models").json()["load_seconds"]

    assert results, "no request was made"
    assert {status for _, _, status, _ in results} == {200}
    first_new = min(received for _, received, _, version in results if version == new_version)
    last_old = max(received for _, received, _, version in results if version != new_version)
    lag = max(first_new, last_old) - moved_at[0]
    assert lag <= poll + load_seconds + 1.0, f"old version still served {lag:.2f} s after the move"
    if http_workers == 1:
        assert all(version == new_version for sent, _, _, version in results if sent > first_new)


def _served_versions(metrics: str, name: str) -> dict[str, str]:
    """Worker pid -> the version it serves, from the per-worker model_version series."""
    versions = {}
    for line in metrics.splitlines():
        if line.startswith("ancora_inference_model_version{") and f'name="{name}"' in line:
            pid = line.split('pid="', 1)[1].split('"', 1)[0]
            versions[pid] = line.rsplit(" ", 1)[1]
    return versions


def _wait_for_versions(url: str, name: str, version: str, workers: int, timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        versions = _served_versions(httpx.get(f"{url}/metrics", timeout=30).text, name)
        if len(versions) == workers and set(versions.values()) == {f"{version}.0"}:
            return versions
        assert time.monotonic() < deadline, f"served versions per worker: {versions}"
        time.sleep(0.1)


def test_two_http_workers_share_the_port_the_metrics_and_a_reload(
    tmp_path: Path, registry: Registry, holdout: pd.DataFrame
) -> None:
    """ANCORA_SERVING_HTTP_WORKERS=2: two processes answer on one port; /metrics adds up both; a reload
    answered by one reaches the other (the poll is a minute, so only the reload can explain its swap);
    the bounded protocol keeps its deadlines in the workers."""
    name = "covertype-workers"
    register(registry.uri, name, registry.first, alias="champion")
    new_version = register(registry.uri, name, registry.second)
    extra = {"ANCORA_SERVING_HTTP_WORKERS": "2", "ANCORA_INFERENCE_HEADER_TIMEOUT_SECONDS": "1"}
    row = _raw(holdout)[0]
    with running_inference(
        tmp_path, registry.uri, model_name=name, poll_seconds=60, admin_token=TOKEN, extra_env=extra
    ) as url:
        before = _wait_for_versions(url, name, "1", workers=2, timeout=120)
        for _ in range(20):  # a connection each: the kernel hands them to either worker
            answer = httpx.post(f"{url}/predict", json=row, timeout=30)
            assert answer.status_code == 200, answer.text
            assert answer.json()["model_version"] == "1"
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
        assert 'ancora_inference_requests_total{method="POST",route="/predict",status="200"} 20.0' in metrics

        mlflow.MlflowClient(registry.uri).set_registered_model_alias(name, "champion", new_version)
        for headers in ({}, {"Authorization": "Bearer wrong"}):  # refused, and no worker is signalled
            assert httpx.post(f"{url}/reload", headers=headers, timeout=30).status_code == 401
        time.sleep(1.0)
        assert _served_versions(httpx.get(f"{url}/metrics", timeout=30).text, name) == before
        reload = httpx.post(f"{url}/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        assert reload.json() == {"changed": True, "model_version": new_version, "error": None}
        after = _wait_for_versions(url, name, new_version, workers=2, timeout=30)
        assert after.keys() == before.keys()
        for _ in range(10):
            assert httpx.post(f"{url}/predict", json=row, timeout=30).json()["model_version"] == new_version

        port = httpx.URL(url).port
        assert port is not None
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            assert read_until_closed(sock, timeout=30).startswith(b"HTTP/1.1 408 ")
            assert time.monotonic() - started < 10


HOSTILE_TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b'"\xff\xfe"', b'"\xc3\x28"']
"""JSON that Python's encoder writes but the standard refuses, numbers past a float, invalid UTF-8:
each once answered 500 and dropped the connection."""


@st.composite
def hostile_bodies(draw: st.DrawFn, case: Any) -> Any:
    """The generated case with a hostile token as the value of a feature (a field that is read: an
    ignored field may hold NaN, as pydantic allows), sent as raw bytes."""
    body = case.body
    token = draw(st.sampled_from(HOSTILE_TOKENS))
    if isinstance(body, str):  # text/csv: invalid UTF-8 inside a cell
        position = draw(st.integers(0, len(body)))
        case.body = body[:position].encode() + b"\xff\xfe" + body[position:].encode()
        return case
    marker = "__hostile__"
    field = draw(st.sampled_from(FEATURE_NAMES))
    if isinstance(body, list):
        first = body[0] if body and isinstance(body[0], dict) else {}
        body = [{**first, field: marker}, *body[1:]]
    else:
        body = {**(body if isinstance(body, dict) else {}), field: marker}
    case.body = json.dumps(body).encode().replace(f'"{marker}"'.encode(), token)
    return case


def test_no_generated_request_gets_a_server_error(service: str) -> None:
    """Schemathesis generates requests for every operation of the OpenAPI document; none may get a 5xx.

    Each operation with a body is called twice over: with generated bodies, and with generated bodies
    carrying a hostile token (``HOSTILE_TOKENS``), which must be refused with a 4xx.
    """
    schema = schemathesis.openapi.from_url(f"{service}/openapi.json")
    hostile_calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: Any) -> None:
            case.call_and_validate(checks=[not_a_server_error], timeout=30)

        call()
        if operation.method.upper() != "POST" or not operation.path.startswith("/predict"):
            continue

        @given(case=operation.as_strategy().flatmap(hostile_bodies))
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call_hostile(case: Any) -> None:
            nonlocal hostile_calls
            response = case.call_and_validate(checks=[not_a_server_error], timeout=30)
            hostile_calls += 1
            assert 400 <= response.status_code < 500, (case.body[:200], response.text[:300])

        call_hostile()
    assert hostile_calls >= 60


def test_attacks_on_the_real_process_are_refused(service: str, holdout: pd.DataFrame) -> None:
    """`ancora serve` wires the body caps and the bounded HTTP protocol (the attacks one by one are in
    tests/unit/test_inference_attacks.py)."""
    port = httpx.URL(service).port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 150000000\r\n\r\n{")
        assert read_until_closed(sock, timeout=30).startswith(b"HTTP/1.1 413 ")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Junk: " + b"a" * 100_000 + b"\r\n\r\n")
        assert read_until_closed(sock, timeout=30).startswith(b"HTTP/1.1 431 ")
    row = json.dumps(_raw(holdout)[0])
    with httpx.Client(base_url=service, timeout=30) as client:
        for literal in ("NaN", "1e400"):
            response = client.post("/predict", content=row[:-1] + f', "Slope": {literal}}}')
            assert response.status_code == 422
            assert response.json()["detail"][0]["loc"] == ["body", "Slope"]
        header = ",".join(f"c{index}" for index in range(20_000))
        wide = client.post("/predict/batch", content=header, headers={"content-type": "text/csv"})
        assert wide.status_code == 422


def test_the_service_keeps_serving_when_the_registry_stops(
    service: str, registry: Registry, holdout: pd.DataFrame
) -> None:
    """Last in the module on purpose: it stops the module's MLflow server for good."""
    row = _raw(holdout)[0]
    registry.server.stop()
    with httpx.Client(base_url=service, timeout=30) as client:
        deadline = time.monotonic() + 30
        while "ancora_inference_last_check_failed 1.0" not in client.get("/metrics").text:
            assert time.monotonic() < deadline, "the failed check never showed in /metrics"
            time.sleep(0.2)
        for _ in range(10):
            assert client.post("/predict", json=row).status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["last_check_error"]
        assert client.get("/models").json()["status"] == "serving"
        metrics = client.get("/metrics").text
        assert 'ancora_inference_reload_failures_total{kind="registry"} 0.0' not in metrics
