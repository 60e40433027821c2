"""The BYOM provisioning API on the ``local`` target: real deploys of the pulsar model on this machine."""

from __future__ import annotations

import io
import os
import pickle
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ancora.config import Settings
from ancora.sagemaker.data import write_payload_csv
from ancora_provisioning.app import create_app
from tests.support.sagemaker import (
    PROVISIONING_TOKEN,
    READ_TOKEN,
    REFERENCE_ROW,
    bearer,
    tar_model,
    trained_pulsar,
)
from tests.support.simulator import free_port

AUTH = bearer(PROVISIONING_TOKEN)
READ = bearer(READ_TOKEN)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        provisioning_token=PROVISIONING_TOKEN,
        provisioning_read_token=READ_TOKEN,
        byom_data_roots=str(tmp_path),
        byom_start_timeout_seconds=60,
    )


@pytest.fixture
def artifacts(settings: Settings) -> Path:
    root = Path(settings.byom_artifact_roots[0])
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
    answer = client.post("/pipelinestatus", json={"pipeline_id": pipeline_id}, headers=READ)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def infer(client: TestClient, body: dict[str, Any]) -> httpx.Response:
    return client.post("/inference", json=body, headers=READ)


def registered_endpoint(settings: Settings, name: str = "pulsar") -> dict[str, Any]:
    """What the service itself recorded (pid, port, folder): not what /pipelinestatus shows."""
    from ancora.sagemaker.registry import PipelineRegistry

    registry = PipelineRegistry(settings.provisioning_db_url)
    try:
        endpoint = registry.endpoint(name)
        assert endpoint is not None, f"no endpoint {name} recorded"
        return endpoint.details
    finally:
        registry.dispose()


def test_reference_flow_deploys_pulsar_and_predicts_class_1(
    client: TestClient, settings: Settings, model_tarball: Path, tmp_path: Path
) -> None:
    capture = tmp_path / "capture"
    answer = provision(client, realtime_body(model_tarball, data_capture_location=str(capture)))
    assert answer.status_code == 200, answer.text
    created = answer.json()
    assert set(created) == {"message", "pipeline_id"} and created["message"] == "endpoint pulsar created"
    state = status_of(client, created["pipeline_id"])
    assert state["status"] == "Succeeded" and state["endpoint_name"] == "pulsar"
    first = registered_endpoint(settings)
    assert alive(first["pid"])

    inference = infer(client, {"payload": REFERENCE_ROW, "content_type": "text/csv"})
    assert inference.status_code == 200, inference.text
    assert inference.json() == {"endpoint_name": "pulsar", "predictions": [1]}
    captured = list(capture.glob("pulsar/*/*/*/capture.jsonl"))
    assert len(captured) == 1 and '"output": {"predictions": [1]}' in captured[0].read_text()

    json_rows = [[float(value) for value in REFERENCE_ROW.split(",")]] * 2
    as_json = infer(client, {"payload": json_rows, "content_type": "application/json"})
    assert as_json.json()["predictions"] == [1, 1]

    again = provision(client, realtime_body(model_tarball))
    assert again.status_code == 200 and again.json()["message"] == "endpoint pulsar updated"
    updated = registered_endpoint(settings)
    assert updated["pid"] != first["pid"] and updated["url"] != first["url"]
    assert not alive(first["pid"]), "the replaced endpoint process still runs"
    assert not Path(first["prefix"]).exists(), "the replaced model folder was left behind"
    after = infer(client, {"payload": REFERENCE_ROW, "content_type": "text/csv"})
    assert after.json()["predictions"] == [1]


def test_status_shows_no_pids_ports_or_server_folders(
    client: TestClient, settings: Settings, model_tarball: Path
) -> None:
    pipeline_id = provision(client, realtime_body(model_tarball)).json()["pipeline_id"]
    state = status_of(client, pipeline_id)
    recorded = registered_endpoint(settings)
    shown = str(state)
    assert state["details"] == {}
    for secret in (str(recorded["pid"]), recorded["url"], recorded["prefix"], str(settings.state_dir)):
        assert secret not in shown, f"/pipelinestatus shows {secret!r}"
    assert client.post("/pipelinestatus", json={"pipeline_id": pipeline_id}).status_code == 401


def test_relative_artifact_and_scheme_less_capture_are_read_like_the_orchestrator(
    client: TestClient, model_tarball: Path, tmp_path: Path
) -> None:
    """``model.tar.gz`` is read from the local assets root; ``bucket/prefix`` is S3, which must be under
    ANCORA_BYOM_DATA_ROOTS (only a folder here): refused, in the caller's own words."""
    assert model_tarball.name == "model.tar.gz"
    capture = str(tmp_path / "capture")
    outside = provision(client, realtime_body("model.tar.gz", data_capture_location="other-bucket/data"))
    assert outside.status_code == 422
    assert outside.json()["detail"] == (
        "data_capture_location 'other-bucket/data' is outside the allowed roots (ANCORA_BYOM_DATA_ROOTS)"
    )
    bad_bucket = provision(client, realtime_body("model.tar.gz", data_capture_location="Not_A_Bucket/x"))
    assert bad_bucket.status_code == 422 and "not a valid S3 bucket name" in bad_bucket.json()["detail"]
    missing = provision(client, realtime_body("elsewhere/model.tar.gz", data_capture_location=capture))
    assert missing.status_code == 422
    assert missing.json()["detail"] == (
        "model_artifact_location 'elsewhere/model.tar.gz': model.tar.gz not found"
    )
    escape = provision(client, realtime_body("../../model.tar.gz", data_capture_location=capture))
    assert escape.status_code == 422 and "outside the allowed roots" in escape.json()["detail"]

    relative = provision(client, realtime_body("model.tar.gz", data_capture_location=capture))
    assert relative.status_code == 200, relative.text
    assert infer(client, {"payload": REFERENCE_ROW, "content_type": "text/csv"}).json()["predictions"] == [1]


def test_inference_passes_on_the_endpoints_client_errors(client: TestClient, model_tarball: Path) -> None:
    """Also: a capture folder that cannot be written loses the capture, not the prediction."""
    unwritable = model_tarball.parent / "capture-is-a-file"
    unwritable.write_text("not a folder")
    assert (
        provision(client, realtime_body(model_tarball, data_capture_location=str(unwritable))).status_code
        == 200
    )
    answered = infer(client, {"payload": REFERENCE_ROW, "content_type": "text/csv"})
    assert answered.status_code == 200 and answered.json()["predictions"] == [1]
    wrong_type = infer(client, {"payload": REFERENCE_ROW, "content_type": "text/plain"})
    assert wrong_type.status_code == 415 and "not supported" in wrong_type.json()["detail"]
    short_row = infer(client, {"payload": "1,2,3", "content_type": "text/csv"})
    assert short_row.status_code == 400
    assert short_row.json()["detail"] == "line 1 has 3 values; the model expects 8"
    unknown = infer(client, {"payload": REFERENCE_ROW, "content_type": "text/csv", "endpoint_name": "nope"})
    assert unknown.status_code == 404


def test_endpoints_stop_with_the_service_and_come_back_with_it(
    settings: Settings, model_tarball: Path
) -> None:
    with TestClient(create_app(settings)) as first:
        assert provision(first, realtime_body(model_tarball)).status_code == 200
        pid = registered_endpoint(settings)["pid"]
    assert not alive(pid), "an endpoint outlived the service that started it"
    with TestClient(create_app(settings)) as second:
        answer = infer(second, {"payload": REFERENCE_ROW, "content_type": "text/csv"})
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
    missing = infer(client, {"payload": REFERENCE_ROW, "content_type": "text/csv"})
    assert missing.status_code == 422 and "deployed endpoints: []" in missing.json()["detail"]


def test_unknown_pipeline_status_is_404(client: TestClient) -> None:
    assert client.post("/pipelinestatus", json={"pipeline_id": "0" * 32}, headers=READ).status_code == 404


def delete(client: TestClient, body: dict[str, str], token: str = PROVISIONING_TOKEN) -> httpx.Response:
    return client.post("/deletepipeline", json=body, headers=bearer(token))


def test_delete_stops_the_endpoint_and_removes_its_folder(
    client: TestClient, settings: Settings, model_tarball: Path
) -> None:
    pipeline_id = provision(client, realtime_body(model_tarball)).json()["pipeline_id"]
    recorded = registered_endpoint(settings)
    assert alive(recorded["pid"]) and Path(recorded["prefix"]).is_dir()

    answer = delete(client, {"pipeline_id": pipeline_id})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "message": f"pipeline {pipeline_id} deleted: endpoint pulsar, model folder",
        "deleted": [pipeline_id],
    }
    assert not alive(recorded["pid"]), "the deleted endpoint's process still runs"
    assert not Path(recorded["prefix"]).exists(), "the deleted endpoint's folder is still there"
    assert status_of(client, pipeline_id)["status"] == "Deleted"
    gone = infer(client, {"payload": REFERENCE_ROW, "content_type": "text/csv", "endpoint_name": "pulsar"})
    assert gone.status_code == 404

    again = delete(client, {"pipeline_id": pipeline_id})
    assert again.status_code == 200
    assert again.json()["message"] == f"pipeline {pipeline_id} was already deleted"
    assert delete(client, {"pipeline_id": "0" * 32}).status_code == 404
    assert delete(client, {"endpoint_name": "pulsar"}).status_code == 404


def test_deleting_an_endpoint_tears_down_every_pipeline_behind_it(
    client: TestClient, settings: Settings, model_tarball: Path
) -> None:
    first = provision(client, realtime_body(model_tarball)).json()["pipeline_id"]
    second = provision(client, realtime_body(model_tarball)).json()["pipeline_id"]
    recorded = registered_endpoint(settings)
    answer = delete(client, {"endpoint_name": "pulsar"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["deleted"] == [second, first], "the serving pipeline goes first"
    assert not alive(recorded["pid"]) and not Path(recorded["prefix"]).exists()
    assert {status_of(client, pid)["status"] for pid in (first, second)} == {"Deleted"}
    assert not any((settings.state_dir / "provisioning" / "endpoints" / "pulsar").iterdir())
    both = client.post(
        "/deletepipeline", json={"pipeline_id": first, "endpoint_name": "pulsar"}, headers=AUTH
    )
    assert both.status_code == 422 and "exactly one of pipeline_id and endpoint_name" in both.text


def batch_body(model: Path | str, source: str, output: str) -> dict[str, Any]:
    return {
        "pipeline_type": "byom_batch_custom",
        "model_name": "pulsar",
        "model_artifact_location": str(model),
        "custom_image_uri": "ancora-sagemaker:latest",
        "inference_instance": "ml.m5.large",
        "batch_inference_data": source,
        "batch_job_output_location": output,
    }


def test_requests_cannot_name_paths_outside_the_data_roots(tmp_path: Path, model_tarball: Path) -> None:
    """Issue #15: a batch job read the task service's JWT secret. With the default data roots
    (state_dir/provisioning/data and the SageMaker bucket) no request can name it, nor write or capture
    anywhere else; nothing is recorded or written for a refused request."""
    settings = Settings(
        state_dir=tmp_path / "state", provisioning_token=PROVISIONING_TOKEN, byom_start_timeout_seconds=60
    )
    secret = settings.state_dir / "task_service" / "jwt_secret"
    secret.parent.mkdir(parents=True)
    secret.write_text("1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0\n")
    data_root = Path(settings.byom_data_roots[0])
    allowed_output = str(data_root / "out")
    stolen = str(data_root / ".." / ".." / "task_service" / "jwt_secret")
    source, output, capture = "batch_inference_data", "batch_job_output_location", "data_capture_location"
    somewhere = str(data_root / "in.csv")
    attacks = [
        (batch_body(model_tarball, str(secret), allowed_output), source),
        (batch_body(model_tarball, stolen, allowed_output), source),
        (batch_body(model_tarball, somewhere, str(tmp_path / "elsewhere")), output),
        (batch_body(model_tarball, somewhere, "/etc/cron.d"), output),
        (realtime_body(model_tarball, data_capture_location=str(settings.state_dir)), capture),
        (realtime_body(model_tarball, data_capture_location="/var/log"), capture),
        (realtime_body(model_tarball, data_capture_location="any-bucket/data"), capture),
    ]
    with TestClient(create_app(settings)) as client:
        for body, field in attacks:
            answer = provision(client, body)
            assert answer.status_code == 422, (body, answer.text)
            assert answer.json()["detail"].startswith(field), answer.text
            assert "outside the allowed roots (ANCORA_BYOM_DATA_ROOTS)" in answer.json()["detail"]
            assert str(tmp_path) not in answer.json()["detail"].replace(str(body[field]), "")
    assert not (tmp_path / "elsewhere").exists() and not (data_root / "out").exists()
    from ancora.sagemaker.registry import PipelineRegistry

    registry = PipelineRegistry(settings.provisioning_db_url)
    try:
        assert registry.in_progress() == [] and registry.endpoints() == []
    finally:
        registry.dispose()


def test_each_token_opens_only_its_own_doors(settings: Settings, model_tarball: Path) -> None:
    admin = "inference-reload-token-not-for-provisioning-0123"
    with_admin = settings.model_copy(update={"admin_token": SecretStr(admin)})
    body = realtime_body(model_tarball)
    with TestClient(create_app(with_admin)) as client:
        refused = {
            "no header": {},
            "ANCORA_ADMIN_TOKEN": bearer(admin),
            "wrong token": bearer("x" * 40),
            "Basic scheme": {"Authorization": f"Basic {PROVISIONING_TOKEN}"},
            "token as the scheme": {"Authorization": PROVISIONING_TOKEN},
        }
        for label, headers in refused.items():
            for path, payload in (
                ("/provisionpipeline", body),
                ("/deletepipeline", {"endpoint_name": "pulsar"}),
                ("/pipelinestatus", {"pipeline_id": "0" * 32}),
                ("/inference", {"payload": REFERENCE_ROW}),
            ):
                answer = client.post(path, json=payload, headers=headers)
                assert answer.status_code == 401, (label, path, answer.text)
                assert answer.headers["www-authenticate"] == "Bearer"
        for path, payload in (("/provisionpipeline", body), ("/deletepipeline", {"endpoint_name": "pulsar"})):
            forbidden = client.post(path, json=payload, headers=READ)
            assert forbidden.status_code == 403 and "read token may not" in forbidden.json()["detail"]
        pipeline_id = provision(client, body).json()["pipeline_id"]
        assert status_of(client, pipeline_id)["status"] == "Succeeded"
        assert infer(client, {"payload": REFERENCE_ROW}).json()["predictions"] == [1]
        assert client.get("/health").json() == {"status": "ok", "target": "local"}
    closed = settings.model_copy(update={"provisioning_token": None, "provisioning_read_token": None})
    with TestClient(create_app(closed)) as client:
        for path in ("/provisionpipeline", "/pipelinestatus", "/inference", "/deletepipeline"):
            answer = client.post(path, json={}, headers=AUTH)
            assert answer.status_code == 503 and "ANCORA_PROVISIONING_TOKEN" in answer.json()["detail"]


def test_bodies_are_bounded_and_malformed_ones_are_4xx(client: TestClient) -> None:
    huge = client.post(
        "/pipelinestatus",
        content=b'{"pipeline_id": "' + b"0" * 100_000 + b'"}',
        headers={**READ, "Content-Type": "application/json"},
    )
    assert huge.status_code == 413 and "larger than 65536 bytes" in huge.json()["detail"]

    def chunks() -> Iterator[bytes]:
        yield b'{"payload": "'
        for _ in range(100):
            yield b"1" * 100_000
        yield b'"}'

    streamed = client.post(
        "/inference", content=chunks(), headers={**READ, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413 and "larger than 8388608 bytes" in streamed.json()["detail"]
    for raw in (b"{not json", b'{"pipeline_id": "\xff\xfe"}', b"[1, 2]", b'"text"'):
        answer = client.post(
            "/pipelinestatus", content=raw, headers={**READ, "Content-Type": "application/json"}
        )
        assert 400 <= answer.status_code < 500, (raw, answer.status_code, answer.text)
        assert "detail" in answer.json()
    not_a_number = client.post("/pipelinestatus", content=b"{}", headers={**READ, "Content-Length": "12x"})
    assert not_a_number.status_code == 400


def serve_processes(state_dir: Path) -> list[int]:
    """Live ``serve`` processes of endpoints under ``state_dir``, found in /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ours = any(str(state_dir).encode() in part for part in command)
        serving = b"ancora.sagemaker.container" in command and b"serve" in command
        if ours and serving and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def start_service(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``ancora provisioning`` as its own process, as a user runs it."""
    port = free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ancora", "provisioning", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    raise TimeoutError(log_path.read_text())


def cli(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ancora", "provisioning", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_killed_service_leaves_no_duplicate_endpoints_and_the_cli_tears_down(
    settings: Settings, model_tarball: Path, tmp_path: Path
) -> None:
    """Issue #15: after a SIGKILL of the service its endpoint processes lived on, and a restart
    started duplicates. The restarted service stops the recorded orphans first; then the CLI's
    delete stops the endpoint and removes its folder."""
    env = {
        **os.environ,
        "ANCORA_STATE_DIR": str(settings.state_dir),
        "ANCORA_PROVISIONING_TOKEN": PROVISIONING_TOKEN,
        "ANCORA_PROVISIONING_READ_TOKEN": READ_TOKEN,
        "ANCORA_BYOM_DATA_ROOTS": str(tmp_path),
    }
    services: list[subprocess.Popen[bytes]] = []
    try:
        first, url = start_service(env, tmp_path / "first.log")
        services.append(first)
        answer = httpx.post(
            f"{url}/provisionpipeline", json=realtime_body(model_tarball), headers=AUTH, timeout=120
        )
        assert answer.status_code == 200, answer.text
        pipeline_id = answer.json()["pipeline_id"]
        orphan = registered_endpoint(settings)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        assert alive(orphan["pid"]), "the endpoint should outlive a SIGKILL of its service (the case at hand)"

        second, url = start_service(env, tmp_path / "second.log")
        services.append(second)
        assert not alive(orphan["pid"]), "the restarted service left its predecessor's endpoint running"
        restarted = registered_endpoint(settings)
        assert serve_processes(settings.state_dir) == [restarted["pid"]], "duplicate endpoint processes"
        inference = httpx.post(f"{url}/inference", json={"payload": REFERENCE_ROW}, headers=READ)
        assert inference.json()["predictions"] == [1]

        shown = cli(env, "status", pipeline_id, "--url", url)
        assert shown.returncode == 0 and '"status": "Succeeded"' in shown.stdout, shown.stderr
        deleted = cli(env, "delete", pipeline_id, "--url", url)
        assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        assert f"pipeline {pipeline_id} deleted: endpoint pulsar, model folder" in deleted.stdout
        assert serve_processes(settings.state_dir) == []
        assert not Path(restarted["prefix"]).exists()
        assert "was already deleted" in cli(env, "delete", pipeline_id, "--url", url).stdout
        assert cli(env, "delete", "--url", url).returncode == 2
        unknown = cli(env, "delete", "--endpoint", "nope", "--url", url)
        assert unknown.returncode == 1 and "no endpoint 'nope'" in unknown.stdout
    finally:
        for service in services:
            if service.poll() is None:
                os.killpg(service.pid, signal.SIGTERM)
                service.wait(timeout=30)
        for pid in serve_processes(settings.state_dir):
            os.killpg(pid, signal.SIGKILL)


def recorded_batch(settings: Settings, folder: Path, pid: int, start_ticks: int) -> str:
    """A batch pipeline InProgress in the registry, as a service records it once its process started."""
    from ancora.sagemaker.registry import PipelineRegistry

    registry = PipelineRegistry(settings.provisioning_db_url)
    try:
        pipeline = registry.create(
            pipeline_type="byom_batch_custom",
            target="local",
            model_name="pulsar",
            endpoint_name=None,
            request={},
        )
        details = {"pid": pid, "start_ticks": start_ticks, "prefix": str(folder)}
        registry.update(pipeline.pipeline_id, details=details)
        return pipeline.pipeline_id
    finally:
        registry.dispose()


def test_recorded_batch_processes_are_stopped_by_a_restart_and_by_a_delete(
    settings: Settings, tmp_path: Path
) -> None:
    """A batch job's process outlives a killed service like an endpoint does: a restart stops it and
    fails its pipeline, a delete stops it, and a pid since reused by another process is left alone."""
    from ancora.stack.processes import process_info

    def sleeper() -> tuple[subprocess.Popen[bytes], int]:
        process = subprocess.Popen(["sleep", "300"], start_new_session=True)
        info = process_info(process.pid)
        assert info is not None
        return process, info.start_ticks

    orphan, orphan_ticks = sleeper()
    bystander, bystander_ticks = sleeper()
    folder = tmp_path / "batch-folder"
    folder.mkdir()
    orphaned = recorded_batch(settings, folder, orphan.pid, orphan_ticks)
    reused = recorded_batch(settings, tmp_path / "gone", bystander.pid, bystander_ticks + 1)
    try:
        with TestClient(create_app(settings)) as client:
            assert orphan.wait(timeout=30) == -signal.SIGTERM
            assert not folder.exists()
            state = status_of(client, orphaned)
            assert state["status"] == "Failed" and "ended with the service" in state["message"]
            assert bystander.poll() is None, "killed a process with the pid but another start time"
            assert status_of(client, reused)["status"] == "Failed"

            running, running_ticks = sleeper()
            pipeline_id = recorded_batch(settings, tmp_path / "running", running.pid, running_ticks)
            answer = delete(client, {"pipeline_id": pipeline_id})
            assert answer.status_code == 200, answer.text
            assert running.wait(timeout=30) == -signal.SIGTERM
            assert status_of(client, pipeline_id)["status"] == "Deleted"
    finally:
        for process in (orphan, bystander):
            if process.poll() is None:
                process.kill()
                process.wait()
