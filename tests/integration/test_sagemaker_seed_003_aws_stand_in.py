"""Seed 003 (the INF2102 pulsar project) run as written: its shell commands and its JSON bodies.

The seed builds a scikit-learn container with ``build_and_push.sh``, tests it with ``train_local.sh``,
``serve_local.sh`` and ``predict.sh``, packs the model with ``tar``, uploads it to the orchestrator's
assets bucket and calls ``/provisionpipeline``, ``/pipelinestatus`` and ``/inference``. Here the
commands are run verbatim (``--native`` added where the seed needs Docker, which does not run on this
machine), and the bodies are the seed's text with only ``<bucket-name>``, ``<aws_account_number>``
and the pipeline id filled in. moto's server stands in for AWS (ECR, S3, SageMaker) and a stand-in
``docker`` records what the build script asks of Docker. ``aws s3 cp`` becomes boto3's upload: the
AWS CLI is not a dependency of the project.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from fastapi.testclient import TestClient

from ancora.config import Settings
from ancora_provisioning.app import create_app
from tests.support.repo import REPO_ROOT
from tests.support.sagemaker import (
    FAKE_AWS_ENV,
    PROVISIONING_TOKEN,
    READ_TOKEN,
    bearer,
    docker_calls,
    docker_stand_in,
    moto_server,
)
from tests.support.simulator import free_port

BUCKET = "inf2102-pulsar-assets"
ACCOUNT = "123456789012"
"""moto's account: what ``aws sts get-caller-identity`` answers there."""
CONTAINER = REPO_ROOT / "sagemaker"
LOCAL_TEST = CONTAINER / "local_test"

SEED_PROVISION = """
{
  "pipeline_type": "byom_realtime_custom",
  "custom_image_uri": "<aws_account_number>.dkr.ecr.us-east-1.amazonaws.com/random_forest",
  "model_name": "pulsar",
  "model_artifact_location": "model.tar.gz",
  "data_capture_location": "<bucket-name>/data",
  "inference_instance": "ml.m5.large",
  "endpoint_name": "pulsar"
}
"""
SEED_STATUS = """
{
  "pipeline_id": "arn:aws:cloudformation:<region>:<account-id>:stack/<stack-id>"
}
"""
SEED_INFERENCE = """
{
  "payload": "99.3671875,41.57220208,1.547196967,4.154106043,27.55518395,61.71901588,2.20880796,3.662680136",
  "content_type": "text/csv"
}
"""
SEED_PIPELINE_ID = "arn:aws:cloudformation:<region>:<account-id>:stack/<stack-id>"


def provision_body() -> dict[str, Any]:
    filled = SEED_PROVISION.replace("<aws_account_number>", ACCOUNT).replace("<bucket-name>", BUCKET)
    return dict(json.loads(filled))


def status_body(pipeline_id: str) -> dict[str, Any]:
    return dict(json.loads(SEED_STATUS.replace(SEED_PIPELINE_ID, pipeline_id)))


def inference_body() -> dict[str, Any]:
    return dict(json.loads(SEED_INFERENCE))


def shell(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """One of the seed's command lines, run by bash as the seed's reader types it."""
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


def aws_environment(moto_url: str) -> dict[str, str]:
    """What a process needs to reach the AWS stand-in: moto's address and credentials moto accepts."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    return {**environment, **FAKE_AWS_ENV, "ANCORA_AWS_ENDPOINT_URL": moto_url, "PYTHON": sys.executable}


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    httpx.post(f"{moto_url}/moto-api/reset").raise_for_status()
    boto3.client("s3", region_name="us-east-1", endpoint_url=moto_url).create_bucket(Bucket=BUCKET)
    return moto_url


def client_for(moto_url: str, service: str) -> Any:
    return boto3.client(service, region_name="us-east-1", endpoint_url=moto_url)


def test_seed_003_build_and_push_on_the_aws_stand_in(aws: str, tmp_path: Path) -> None:
    """``cd container/ && ./build_and_push.sh random_forest``: the repository is created in (moto's)
    ECR, Docker logs in with the ECR token and builds, tags and pushes the image."""
    bin_dir, log = docker_stand_in(tmp_path / "bin")
    env = aws_environment(aws) | {"PATH": f"{bin_dir}:{os.environ['PATH']}", "DOCKER_STAND_IN_LOG": str(log)}
    image = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/random_forest:latest"

    first = shell("./build_and_push.sh random_forest", CONTAINER, env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.splitlines() == ["created the ECR repository random_forest", image]
    ecr = client_for(aws, "ecr")
    [repository] = ecr.describe_repositories(repositoryNames=["random_forest"])["repositories"]
    assert repository["repositoryUri"] == image.removesuffix(":latest")
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().partition(":")[2]
    registry = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
    assert docker_calls(log) == [
        {"argv": ["login", "--username", "AWS", "--password-stdin", registry], "stdin": password},
        {
            "argv": [
                *("build", "--platform", "linux/amd64", "-f", str(CONTAINER / "Dockerfile")),
                *("-t", "random_forest:latest", str(REPO_ROOT)),
            ],
            "stdin": "",
        },
        {"argv": ["tag", "random_forest:latest", image], "stdin": ""},
        {"argv": ["push", image], "stdin": ""},
    ]

    log.unlink()
    again = shell("./build_and_push.sh random_forest", CONTAINER, env)
    assert again.returncode == 0 and again.stdout.splitlines() == [image], "the repository is reused"
    assert len(ecr.describe_repositories()["repositories"]) == 1
    assert [call["argv"][0] for call in docker_calls(log)] == ["login", "build", "tag", "push"]

    refused = shell("./build_and_push.sh random_forest", CONTAINER, env | {"DOCKER_STAND_IN_FAIL": "push"})
    assert refused.returncode == 1 and "docker push failed with exit code 1" in refused.stderr
    bad_name = shell("./build_and_push.sh Random_Forest", CONTAINER, env)
    assert bad_name.returncode == 1 and "not a valid ECR repository name" in bad_name.stderr
    no_docker = shell("./build_and_push.sh random_forest", CONTAINER, env | {"PATH": "/usr/bin:/bin"})
    assert no_docker.returncode == 1 and "'docker' is not on PATH" in no_docker.stderr
    assert shell("./build_and_push.sh", CONTAINER, env).returncode == 2


@dataclass(frozen=True)
class LocalRun:
    """What the seed's local steps left: the predictions of payload.csv and the packed model."""

    predictions: list[str]
    labels: list[str]
    archive: Path
    tar_output: str


def true_labels(payload: Path, pulsar_csv: Path) -> list[str]:
    """The data set's label of each payload row (the payload is HTRU2 rows without their label)."""
    with pulsar_csv.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        labels = {",".join(row[:-1]): row[-1] for row in reader}
    return [labels[line] for line in payload.read_text().splitlines()]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory, pulsar_csv: Path) -> Iterator[LocalRun]:
    """``./train_local.sh random_forest``, ``./serve_local.sh random_forest``, ``./predict.sh payload.csv
    text/csv``, then ``cd test_dir/model && tar czvf model.tar.gz random-forest-pulsar-model.pkl``.
    The scripts run from the checkout's local_test/ with TEST_DIR pointing at a copy of its test_dir,
    so the checkout stays clean."""
    work = tmp_path_factory.mktemp("seed003")
    test_dir = work / "test_dir"
    generated = shutil.ignore_patterns("data", "model", "output")
    shutil.copytree(LOCAL_TEST / "test_dir", test_dir, ignore=generated)
    port = free_port()
    env = os.environ | {"TEST_DIR": str(test_dir), "PORT": str(port), "PYTHON": sys.executable}

    trained = shell("./train_local.sh random_forest --native", LOCAL_TEST, env)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "validation:accuracy=" in trained.stdout
    assert (test_dir / "model" / "random-forest-pulsar-model.pkl").is_file()

    with (work / "serve.log").open("wb") as serve_log:
        server = subprocess.Popen(
            ["bash", "-c", "./serve_local.sh random_forest --native"],
            cwd=LOCAL_TEST,
            env=env,
            stdout=serve_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (work / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (work / "serve.log").read_text()
            time.sleep(0.2)
        predicted = shell("./predict.sh payload.csv text/csv", LOCAL_TEST, env)
        assert predicted.returncode == 0, predicted.stderr
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the seed's `docker kill <CONTAINER_ID>`
        server.wait(timeout=30)

    packed = shell("cd test_dir/model && tar czvf model.tar.gz random-forest-pulsar-model.pkl", work, env)
    assert packed.returncode == 0, packed.stderr
    yield LocalRun(
        predictions=predicted.stdout.split(),
        labels=true_labels(LOCAL_TEST / "payload.csv", pulsar_csv),
        archive=test_dir / "model" / "model.tar.gz",
        tar_output=packed.stdout.strip(),
    )


def test_seed_003_local_scripts_train_serve_and_predict_the_pulsar(local_run: LocalRun) -> None:
    """The seed's example row is a pulsar (class 1) in the data set, and the trained model says so."""
    assert local_run.labels[0] == "1", "the seed's example row is labelled 1 in HTRU_2.csv"
    assert local_run.predictions[0] == "1"
    assert len(local_run.predictions) == 10
    agreeing = sum(p == t for p, t in zip(local_run.predictions, local_run.labels, strict=True))
    print(f"\npayload.csv: predicted {local_run.predictions}, labels {local_run.labels}")
    assert agreeing >= 9
    assert local_run.tar_output == "random-forest-pulsar-model.pkl"


def upload_model(moto_url: str, archive: Path) -> None:
    """The seed's ``aws s3 cp model.tar.gz s3://<bucket-name>``."""
    client_for(moto_url, "s3").upload_file(str(archive), BUCKET, "model.tar.gz")


def seed_settings(tmp_path: Path, moto_url: str, **changes: Any) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        aws_endpoint_url=moto_url,
        sagemaker_bucket=BUCKET,
        provisioning_token=PROVISIONING_TOKEN,
        provisioning_read_token=READ_TOKEN,
        **changes,
    )


def test_seed_003_provisions_on_sagemaker_on_the_aws_stand_in(
    aws: str, local_run: LocalRun, tmp_path: Path
) -> None:
    """The seed's bodies against the ``sagemaker`` target: the relative artifact is read from the
    assets bucket, ``<bucket-name>/data`` is the capture destination, and teardown leaves nothing."""
    upload_model(aws, local_run.archive)
    settings = seed_settings(tmp_path, aws, byom_target="sagemaker")
    canned = {"results": [{"Body": '{"predictions": [1]}', "ContentType": "application/json"}]}
    httpx.post(f"{aws}/moto-api/static/sagemaker/endpoint-results", json=canned).raise_for_status()
    sagemaker = client_for(aws, "sagemaker")
    with TestClient(create_app(settings)) as client:
        answer = client.post("/provisionpipeline", json=provision_body(), headers=bearer(PROVISIONING_TOKEN))
        assert answer.status_code == 200, answer.text
        assert set(answer.json()) == {"message", "pipeline_id"}
        pipeline_id = answer.json()["pipeline_id"]
        state = client.post("/pipelinestatus", json=status_body(pipeline_id), headers=bearer(READ_TOKEN))
        assert state.status_code == 200 and state.json()["status"] == "Succeeded", state.text

        model = sagemaker.describe_model(ModelName=state.json()["details"]["model"])["PrimaryContainer"]
        assert model["Image"] == f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/random_forest"
        assert model["ModelDataUrl"] == f"s3://{BUCKET}/model.tar.gz"
        config_name = state.json()["details"]["endpoint_config"]
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        assert config["DataCaptureConfig"]["DestinationS3Uri"] == f"s3://{BUCKET}/data"
        assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"
        assert sagemaker.describe_endpoint(EndpointName="pulsar")["EndpointStatus"] == "InService"

        inference = client.post("/inference", json=inference_body(), headers=bearer(READ_TOKEN))
        assert inference.json() == {"endpoint_name": "pulsar", "predictions": [1]}

        deleted = client.post(
            "/deletepipeline", json={"pipeline_id": pipeline_id}, headers=bearer(PROVISIONING_TOKEN)
        )
        assert deleted.status_code == 200, deleted.text
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker.list_models()["Models"] == []


def test_seed_003_provisions_locally_and_predicts_class_1_aws_stand_in(
    aws: str, local_run: LocalRun, tmp_path: Path
) -> None:
    """The same bodies against the ``local`` target with the assets root on (moto's) S3: the model
    the seed trained really serves, the example row answers 1, captured requests land in
    ``s3://<bucket-name>/data``, and teardown stops the endpoint and removes its folder."""
    upload_model(aws, local_run.archive)
    settings = seed_settings(tmp_path, aws, byom_assets_root=f"s3://{BUCKET}/", byom_start_timeout_seconds=60)
    with TestClient(create_app(settings)) as client:
        answer = client.post("/provisionpipeline", json=provision_body(), headers=bearer(PROVISIONING_TOKEN))
        assert answer.status_code == 200, answer.text
        assert answer.json()["message"] == "endpoint pulsar created"
        pipeline_id = answer.json()["pipeline_id"]
        state = client.post("/pipelinestatus", json=status_body(pipeline_id), headers=bearer(READ_TOKEN))
        assert state.json()["status"] == "Succeeded", state.text
        endpoint_folder = settings.state_dir / "provisioning" / "endpoints" / "pulsar" / pipeline_id
        assert (endpoint_folder / "model" / "random-forest-pulsar-model.pkl").is_file()

        inference = client.post("/inference", json=inference_body(), headers=bearer(READ_TOKEN))
        assert inference.status_code == 200, inference.text
        assert inference.json() == {"endpoint_name": "pulsar", "predictions": [1]}

        deleted = client.post(
            "/deletepipeline", json={"pipeline_id": pipeline_id}, headers=bearer(PROVISIONING_TOKEN)
        )
        assert deleted.status_code == 200, deleted.text
        assert not endpoint_folder.exists()
        gone = client.post("/inference", json=inference_body(), headers=bearer(READ_TOKEN))
        assert gone.status_code == 422 and "deployed endpoints: []" in gone.json()["detail"]
    s3 = client_for(aws, "s3")
    [captured] = s3.list_objects_v2(Bucket=BUCKET, Prefix="data/")["Contents"]
    assert captured["Key"].startswith("data/pulsar/AllTraffic/")
    [record] = [
        json.loads(line)
        for line in s3.get_object(Bucket=BUCKET, Key=captured["Key"])["Body"].read().decode().splitlines()
    ]
    assert record["input"] == inference_body()["payload"]
    assert record["output"] == {"predictions": [1]}
