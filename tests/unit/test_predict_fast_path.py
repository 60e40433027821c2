"""The /predict fast path answers like the FastAPI route, and hands it everything else.

The app is the real one with a real fitted pipeline swapped in as the served model (no registry: the
watcher's checks fail against a closed port and keep the model serving, as they do in production).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ancora.config import Settings
from ancora.schema import FEATURE_NAMES, LABEL_NAME
from ancora.serving.registry import ServedModel, VersionRef
from ancora.serving.rows import EXAMPLE_ROW, FeatureRow, features_frame, row_values
from ancora_inference.app import create_app
from ancora_inference.routes import predict as predict_routes
from tests.support.inference import covertype_pipeline


@pytest.fixture(scope="module")
def pipeline(covertype_csv: Path) -> Any:
    data = pd.read_csv(covertype_csv, nrows=1000)
    fitted: Any = covertype_pipeline(n_estimators=5, seed=0)
    fitted.fit(data[list(FEATURE_NAMES)], data[LABEL_NAME])
    return fitted


@pytest.fixture
def client(pipeline: Any, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        state_dir=tmp_path,
        mlflow_tracking_uri="http://127.0.0.1:9",
        serving_predict_worker=False,
        model_poll_interval_seconds=300,
        registry_timeout_seconds=1,
        registry_max_retries=0,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        app.state.runtime.watcher._current = ServedModel(
            ref=VersionRef("covertype", "champion", "4", "run-4", "models:/m-4"),
            estimator=pipeline,
            classes=tuple(int(label) for label in pipeline.classes_),
            registry_uri="http://127.0.0.1:9",
            loaded_at=datetime.now(UTC),
            path=tmp_path,
        )
        yield client


def test_clean_and_fall_through_rows_get_the_same_answer(client: TestClient, pipeline: Any) -> None:
    expected = int(pipeline.predict(features_frame([row_values(FeatureRow(**EXAMPLE_ROW))]))[0])
    fast = client.post("/predict", json=EXAMPLE_ROW)
    padded = client.post("/predict", json={**EXAMPLE_ROW, "Elevation": " 3207 "})  # pydantic's to accept
    assert fast.status_code == padded.status_code == 200
    fast_id, padded_id = fast.json().pop("request_id"), padded.json().pop("request_id")
    assert fast.headers["x-request-id"] == fast_id != padded_id == padded.headers["x-request-id"]
    assert {**fast.json(), "request_id": 0} == {**padded.json(), "request_id": 0}
    assert fast.json()["prediction"] == expected
    assert fast.json()["model_version"] == "4"
    metrics = client.get("/metrics").text
    assert 'ancora_inference_requests_total{method="POST",route="/predict",status="200"} 2.0' in metrics


def test_errors_come_from_the_route_in_its_format(client: TestClient) -> None:
    bad = client.post("/predict", json={**EXAMPLE_ROW, "Soil_Type": "C0000"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "Soil_Type"]
    assert (
        client.post("/predict", content=b"{", headers={"content-type": "application/json"}).status_code == 422
    )
    text = client.post("/predict", content=b"x", headers={"content-type": "text/plain"})
    assert text.status_code == 415
    client.app.state.runtime.watcher._current = None  # type: ignore[attr-defined]
    assert client.post("/predict", json=EXAMPLE_ROW).status_code == 503


def test_a_clean_row_never_reaches_the_route(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def route_parser(body: bytes) -> Any:
        raise AssertionError("the FastAPI route parsed a clean row")

    monkeypatch.setattr(predict_routes, "parse_json_row", route_parser)
    assert client.post("/predict", json=EXAMPLE_ROW).status_code == 200
