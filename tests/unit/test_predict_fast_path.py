"""The /predict fast path answers like the FastAPI route, and hands it everything else.

The app is the real one with a real fitted pipeline swapped in as the served model (no registry: the
watcher's checks fail against a closed port and keep the model serving, as they do in production).
"""

from __future__ import annotations

import asyncio
import json
import time
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


def asgi_post(client: TestClient, messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]]) -> Any:
    """POST /predict straight to the ASGI app, the body in the given messages (then nothing more)."""

    async def exchange() -> tuple[int, bytes]:
        pending = list(messages)
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop(0)
            await asyncio.sleep(3600)  # a client that sends nothing more
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        await client.app(scope, receive, send)  # type: ignore[arg-type]
        body = b"".join(message.get("body", b"") for message in sent[1:])
        return sent[0]["status"], body

    return client.portal.call(exchange)  # type: ignore[union-attr]


JSON_HEAD = [(b"content-type", b"application/json")]


def test_a_body_in_two_parts_is_answered_through_the_stack(client: TestClient) -> None:
    body = json.dumps(EXAMPLE_ROW).encode()
    parts = [
        {"type": "http.request", "body": body[:50], "more_body": True},
        {"type": "http.request", "body": body[50:], "more_body": False},
    ]
    status, answer = asgi_post(client, parts, [*JSON_HEAD, (b"content-length", str(len(body)).encode())])
    assert status == 200, answer
    assert json.loads(answer)["model_version"] == "4"


def test_a_chunked_body_is_answered_through_the_stack(client: TestClient) -> None:
    body = json.dumps(EXAMPLE_ROW).encode()
    status, answer = asgi_post(client, [{"type": "http.request", "body": body}], JSON_HEAD)
    assert status == 200, answer


def test_a_body_that_never_comes_gets_408_and_is_counted(client: TestClient) -> None:
    client.app.state.runtime.settings.inference_body_timeout_seconds = 0.3  # type: ignore[attr-defined]
    started = time.monotonic()
    status, answer = asgi_post(client, [], [*JSON_HEAD, (b"content-length", b"400")])
    assert status == 408
    assert json.loads(answer) == {"detail": "the body did not arrive within 0.3 seconds"}
    assert time.monotonic() - started < 5
    metrics = client.get("/metrics").text
    assert 'ancora_inference_requests_total{method="POST",route="/predict",status="408"} 1.0' in metrics


def test_a_declared_body_over_the_cap_is_refused_before_it_is_read(client: TestClient) -> None:
    too_long = str(predict_routes.PREDICT_MAX_BYTES + 1).encode()
    status, answer = asgi_post(client, [], [*JSON_HEAD, (b"content-length", too_long)])
    assert status == 413
    assert "larger than" in json.loads(answer)["detail"]
