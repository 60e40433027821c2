"""The BYOM provisioning API on the ``local`` target: real deploys of the pulsar model on this machine."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ancora.config import Settings
from ancora.sagemaker.data import write_payload_csv
from provisioning.app import create_app
from tests.support.sagemaker import REFERENCE_ROW, tar_model, trained_pulsar

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", admin_token=TOKEN, byom_start_timeout_seconds=60)


@pytest.fixture
def artifacts(settings: Settings) -> Path:
    root = Path(settings.resolved_byom_artifact_roots[0])
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def model_tarball(tmp_path_factory: pytest.TempPathFactory, pulsar_csv: Path, artifacts: Path) -> Path:
    prefix = trained_pulsar(tmp_path_factory.getbasetemp(), pulsar_csv)
    return tar_model(prefix / "model" / "pulsar.pkl", artifacts / "model.tar.gz")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def realtime_body(location: Path | str, **overrides: Any) -> dict[str, Any]:
    body = {
        "pipeline_type": "byom_realtime_custom",
        "model_name": "pulsar",
        "model_artifact_location": str(location),
        "custom_image_uri": "ancora-sagemaker:latest",
        "inference_instance": "ml.m5.large",
        "data_capture_location": str(Path(str(location)).parent / "capture"),
        "endpoint_name": "pulsar",
    }
    body.update(overrides)
    return body


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def provision(client: TestClient, body: dict[str, Any]) -> httpx.Response:
    return client.post("/provisionpipeline", json=body, headers=AUTH)


def status_of(client: TestClient, pipeline_id: str) -> dict[str, Any]:
    answer = client.post("/pipelinestatus", json={"pipeline_id": pipeline_id})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_reference_flow_deploys_pulsar_and_predicts_class_1(
    client: TestClient, model_tarball: Path, tmp_path: Path
) -> None:
    capture = tmp_path / "capture"
    answer = provision(client, realtime_body(model_tarball, data_capture_location=str(capture)))
    assert answer.status_code == 200, answer.text
    created = answer.json()
    assert set(created) == {"message", "pipeline_id"} and "created" in created["message"]
    state = status_of(client, created["pipeline_id"])
    assert state["status"] == "Succeeded" and state["endpoint_name"] == "pulsar"
    first_pid = state["details"]["pid"]
    assert alive(first_pid)

    inference = client.post("/inference", json={"payload": REFERENCE_ROW, "content_type": "text/csv"})
    assert inference.status_code == 200, inference.text
    assert inference.json() == {"endpoint_name": "pulsar", "predictions": [1]}
    captured = list(capture.glob("pulsar/*/*/*/capture.jsonl"))
    assert len(captured) == 1 and '"output": {"predictions": [1]}' in captured[0].read_text()

    json_rows = [[float(value) for value in REFERENCE_ROW.split(",")]] * 2
    as_json = client.post("/inference", json={"payload": json_rows, "content_type": "application/json"})
    assert as_json.json()["predictions"] == [1, 1]

    again = provision(client, realtime_body(model_tarball))
    assert again.status_code == 200 and "updated" in again.json()["message"]
    updated = status_of(client, again.json()["pipeline_id"])
    assert updated["details"]["pid"] != first_pid and updated["details"]["url"] != state["details"]["url"]
    assert not alive(first_pid), "the replaced endpoint process still runs"
    assert not Path(state["details"]["prefix"]).exists(), "the replaced model folder was left behind"
    after = client.post("/inference", json={"payload": REFERENCE_ROW, "content_type": "text/csv"})
    assert after.json()["predictions"] == [1]


def test_inference_passes_on_the_endpoints_client_errors(client: TestClient, model_tarball: Path) -> None:
    assert provision(client, realtime_body(model_tarball)).status_code == 200
    wrong_type = client.post("/inference", json={"payload": REFERENCE_ROW, "content_type": "text/plain"})
    assert wrong_type.status_code == 415 and "not supported" in wrong_type.json()["detail"]
    short_row = client.post("/inference", json={"payload": "1,2,3", "content_type": "text/csv"})
    assert short_row.status_code == 400
    assert short_row.json()["detail"] == "line 1 has 3 values; the model expects 8"
    unknown = client.post(
        "/inference", json={"payload": REFERENCE_ROW, "content_type": "text/csv", "endpoint_name": "nope"}
    )
    assert unknown.status_code == 404


def test_endpoints_stop_with_the_service_and_come_back_with_it(
    settings: Settings, model_tarball: Path
) -> None:
    with TestClient(create_app(settings)) as first:
        pipeline_id = provision(first, realtime_body(model_tarball)).json()["pipeline_id"]
        pid = status_of(first, pipeline_id)["details"]["pid"]
    assert not alive(pid), "an endpoint outlived the service that started it"
    with TestClient(create_app(settings)) as second:
        answer = second.post("/inference", json={"payload": REFERENCE_ROW, "content_type": "text/csv"})
        assert answer.status_code == 200 and answer.json()["predictions"] == [1]


def test_batch_pipeline_scores_a_csv_into_the_output_location(
    client: TestClient, model_tarball: Path, pulsar_csv: Path, tmp_path: Path
) -> None:
    payload = tmp_path / "batch" / "pulsars.csv"
    labels = write_payload_csv(pulsar_csv, payload, rows=200, positives=50, seed=3)
    output = tmp_path / "predictions"
    body = {
        "pipeline_type": "byom_batch_custom",
        "model_name": "pulsar",
        "model_artifact_location": str(model_tarball),
        "custom_image_uri": "ancora-sagemaker:latest",
        "inference_instance": "ml.m5.large",
        "batch_inference_data": str(payload),
        "batch_job_output_location": str(output),
    }
    answer = provision(client, body)
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 120
    while (state := status_of(client, answer.json()["pipeline_id"]))["status"] == "InProgress":
        assert time.monotonic() < deadline, state
        time.sleep(0.3)
    assert state["status"] == "Succeeded", state
    assert state["message"] == "scored 200 rows from 1 file(s)"
    predicted = [int(line) for line in (output / "pulsars.csv.out").read_text().splitlines()]
    assert len(predicted) == 200
    assert sum(p == t for p, t in zip(predicted, labels, strict=True)) >= 180


def test_batch_pipeline_with_a_bad_csv_fails_with_the_reason(
    client: TestClient, model_tarball: Path, tmp_path: Path
) -> None:
    payload = tmp_path / "narrow.csv"
    payload.write_text("1,2,3\n")
    body = {
        "pipeline_type": "byom_batch_builtin",
        "model_name": "pulsar",
        "model_framework": "sklearn",
        "model_framework_version": "1.9",
        "model_artifact_location": str(model_tarball),
        "inference_instance": "ml.m5.large",
        "batch_inference_data": str(payload),
        "batch_job_output_location": str(tmp_path / "out"),
    }
    pipeline_id = provision(client, body).json()["pipeline_id"]
    deadline = time.monotonic() + 120
    while (state := status_of(client, pipeline_id))["status"] == "InProgress":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert state["status"] == "Failed" and "line 1 has 3 values; the model expects 8" in state["message"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"pipeline_type": "byom_realtime_magic"}, "byom_realtime_builtin"),
        ({"custom_image_uri": None}, "byom_realtime_custom requires custom_image_uri"),
        (
            {"model_artifact_location": None, "inference_instance": None},
            "model_artifact_location, inference_instance",
        ),
        ({"pipeline_type": "byom_batch_custom"}, "byom_batch_custom requires batch_inference_data"),
        (
            {
                "pipeline_type": "byom_realtime_builtin",
                "model_framework": "xgboost",
                "model_framework_version": "1",
            },
            "sklearn models only",
        ),
        ({"endpoint_name": "bad_name!"}, "letters, digits and '-'"),
        ({"model_weights": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_requests_are_422_naming_the_problem(
    client: TestClient, model_tarball: Path, changes: dict[str, Any], expected: str
) -> None:
    body = {
        key: value for key, value in {**realtime_body(model_tarball), **changes}.items() if value is not None
    }
    answer = provision(client, body)
    assert answer.status_code == 422
    assert expected in answer.text


def _tarball(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            archive.addfile(info)
    return path


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root: root / "absent.tar.gz", "not found"),
        (
            lambda root: (root / "junk.tar.gz").write_bytes(b"not gzip at all") and root / "junk.tar.gz",
            "not a readable",
        ),
        (lambda root: _tarball(root / "escape.tar.gz", {"../evil.pkl": b"x"}), "escapes the model folder"),
        (
            lambda root: _tarball(root / "link.tar.gz", {"m.pkl": b"x"}, symlink="passwd"),
            "not a regular file",
        ),
        (lambda root: _tarball(root / "two.tar.gz", {"a.pkl": b"x", "b.pkl": b"y"}), "exactly one .pkl"),
        (lambda root: _tarball(root / "none.tar.gz", {"README": b"x"}), "exactly one .pkl"),
        (
            lambda root: _tarball(root / "dict.tar.gz", {"m.pkl": pickle.dumps({"not": "a model"})}),
            "cannot predict",
        ),
        (lambda root: Path("/etc/hostname"), "outside the allowed roots"),
    ],
)
def test_bad_artifacts_are_4xx_and_leave_nothing_deployed(
    client: TestClient, settings: Settings, artifacts: Path, make: Any, expected: str
) -> None:
    location = make(artifacts)
    answer = provision(client, realtime_body(location))
    assert 400 <= answer.status_code < 500, answer.text
    assert expected in answer.json()["detail"]
    endpoints = settings.state_dir / "provisioning" / "endpoints" / "pulsar"
    assert not endpoints.exists() or not any(endpoints.iterdir())
    missing = client.post("/inference", json={"payload": REFERENCE_ROW, "content_type": "text/csv"})
    assert missing.status_code == 422 and "deployed endpoints: []" in missing.json()["detail"]


def test_provisioning_needs_the_admin_token(settings: Settings, model_tarball: Path) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.post("/provisionpipeline", json=realtime_body(model_tarball)).status_code == 401
        wrong = client.post(
            "/provisionpipeline", json=realtime_body(model_tarball), headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
    closed = settings.model_copy(update={"admin_token": None})
    with TestClient(create_app(closed)) as client:
        answer = provision(client, realtime_body(model_tarball))
        assert answer.status_code == 503 and "no admin token is configured" in answer.json()["detail"]


def test_unknown_pipeline_status_is_404(client: TestClient) -> None:
    assert client.post("/pipelinestatus", json={"pipeline_id": "0" * 32}).status_code == 404
