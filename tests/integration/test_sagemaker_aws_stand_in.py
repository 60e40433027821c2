"""SageMaker API calls against moto's server on loopback, the AWS stand-in: no real AWS is reached.

moto accepts and records SageMaker requests and answers describes (training and transform jobs are
``Completed`` at once, endpoints ``InService``); it runs no container and lacks StopTrainingJob and
UpdateEndpoint, so those two calls are checked against botocore's own service model (Stubber) instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.stub import Stubber
from fastapi.testclient import TestClient

from ancora.config import Settings
from ancora.remote.jobs import JobRequest
from ancora.remote.runners.base import Submission, runner_class
from ancora.remote.status import TaskStatus
from ancora.sagemaker.configs import (
    endpoint_config_config,
    model_config,
    sagemaker_name,
    training_job_config,
)
from ancora.sagemaker.data import write_payload_csv
from ancora.sagemaker.runner import SageMakerRunner, from_sagemaker
from ancora_provisioning.app import create_app
from tests.support.sagemaker import (
    FAKE_AWS_ENV,
    PROVISIONING_TOKEN,
    REFERENCE_ROW,
    bearer,
    moto_server,
    tar_model,
    trained_pulsar,
)

BUCKET = "ancora-sagemaker"
AUTH = bearer(PROVISIONING_TOKEN)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    httpx.post(f"{moto_url}/moto-api/reset")
    settings = Settings(
        state_dir=tmp_path / "state",
        aws_endpoint_url=moto_url,
        provisioning_token=PROVISIONING_TOKEN,
        byom_target="sagemaker",
    )
    boto3.client("s3", region_name="us-east-1", endpoint_url=moto_url).create_bucket(Bucket=BUCKET)
    return settings


def client_for(settings: Settings, service: str) -> Any:
    return boto3.client(service, region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url)


def test_operator_configs_are_accepted_by_the_aws_stand_in(aws: Settings) -> None:
    sagemaker = client_for(aws, "sagemaker")
    training = training_job_config(
        aws,
        job_name="pulsar-config-check",
        training_data_uri=f"s3://{BUCKET}/pulsar/training/",
        hyperparameters={"model_name": "pulsar", "n_estimators": 100},
    )
    sagemaker.create_training_job(**training)
    described = sagemaker.describe_training_job(TrainingJobName="pulsar-config-check")
    assert described["AlgorithmSpecification"]["TrainingImage"] == aws.sagemaker_image_uri
    assert described["RoleArn"] == aws.sagemaker_role_arn
    assert described["HyperParameters"] == {"model_name": "pulsar", "n_estimators": "100"}
    assert described["ResourceConfig"]["InstanceType"] == aws.sagemaker_training_instance_type
    assert described["InputDataConfig"][0]["ChannelName"] == "training"

    sagemaker.create_model(
        **model_config(aws, model_name="pulsar-m", model_data_url=f"s3://{BUCKET}/m.tar.gz")
    )
    sagemaker.create_endpoint_config(
        **endpoint_config_config(
            config_name="pulsar-c",
            model_name="pulsar-m",
            instance_type="ml.m5.large",
            data_capture_uri=f"s3://{BUCKET}/c",
        )
    )
    sagemaker.create_endpoint(EndpointName="pulsar", EndpointConfigName="pulsar-c")
    assert sagemaker.describe_endpoint(EndpointName="pulsar")["EndpointStatus"] == "InService"
    config = sagemaker.describe_endpoint_config(EndpointConfigName="pulsar-c")
    assert config["DataCaptureConfig"]["DestinationS3Uri"] == f"s3://{BUCKET}/c"


def test_sagemaker_names_follow_the_rules() -> None:
    assert sagemaker_name("ancora", "task_42/x") == "ancora-task-42-x"
    assert len(sagemaker_name("x" * 100)) == 63
    with pytest.raises(ValueError, match="no usable"):
        sagemaker_name("__")


def test_runner_is_registered_and_maps_statuses() -> None:
    assert runner_class("sagemaker") is SageMakerRunner
    assert from_sagemaker("InProgress", "Starting") is TaskStatus.PENDING
    assert from_sagemaker("InProgress", "Training") is TaskStatus.RUNNING
    assert from_sagemaker("Completed") is TaskStatus.COMPLETED
    assert from_sagemaker("Failed") is TaskStatus.FAILED
    assert from_sagemaker("Stopping") is TaskStatus.CANCELLED
    assert from_sagemaker("Stopped") is TaskStatus.CANCELLED


def test_runner_submits_and_follows_a_training_job_on_the_aws_stand_in(aws: Settings, tmp_path: Path) -> None:
    dataset = tmp_path / "task" / "work" / "dataset"
    dataset.mkdir(parents=True)
    (dataset / "train.csv").write_text("1,0.5,0.25\n0,0.1,0.2\n")
    job = JobRequest(
        task_id="t-123",
        argv=("train",),
        environment={"MLFLOW_EXPERIMENT_NAME": "pulsar"},
        instance_type="cpu",
        account="default_account",
        dataset_zip=str(tmp_path / "dataset.zip"),
        processor_zip=str(tmp_path / "processor.zip"),
        local_work_dir=str(tmp_path / "task"),
        model_params={"n_estimators": 20, "class_weight": "balanced"},
    )
    runner = SageMakerRunner(aws)
    submission = runner.submit(job)
    assert submission.job_id == "ancora-t-123"
    uploaded = client_for(aws, "s3").list_objects_v2(Bucket=BUCKET, Prefix="tasks/t-123/")["Contents"]
    assert [item["Key"] for item in uploaded] == ["tasks/t-123/training/train.csv"]
    described = client_for(aws, "sagemaker").describe_training_job(TrainingJobName="ancora-t-123")
    assert described["HyperParameters"] == {"n_estimators": "20", "class_weight": "balanced"}
    assert described["ResourceConfig"]["InstanceType"] == aws.sagemaker_training_instance_type
    state = runner.poll(submission)
    assert state.status is TaskStatus.COMPLETED
    assert "model at s3://" in state.detail


def test_runner_cancel_sends_a_valid_stop_training_job(aws: Settings) -> None:
    """moto has no StopTrainingJob: botocore's Stubber checks the request against the service model."""
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(sagemaker) as stub:
        stub.add_response("stop_training_job", {}, {"TrainingJobName": "ancora-t-9"})
        SageMakerRunner(aws, sagemaker=sagemaker).cancel(Submission(job_id="ancora-t-9", work_dir=""))
        stub.assert_no_pending_responses()
    with Stubber(sagemaker) as stub:
        stub.add_client_error(
            "stop_training_job", "ValidationException", "The job is not in a status that can be stopped"
        )
        SageMakerRunner(aws, sagemaker=sagemaker).cancel(Submission(job_id="ancora-t-9", work_dir=""))


@pytest.fixture
def uploaded_model(aws: Settings, tmp_path_factory: pytest.TempPathFactory, pulsar_csv: Path) -> str:
    prefix = trained_pulsar(tmp_path_factory.getbasetemp(), pulsar_csv)
    tarball = tar_model(prefix / "model" / "pulsar.pkl", tmp_path_factory.mktemp("tar") / "model.tar.gz")
    client_for(aws, "s3").upload_file(str(tarball), BUCKET, "models/pulsar/model.tar.gz")
    return f"s3://{BUCKET}/models/pulsar/model.tar.gz"


def body(location: str, **changes: Any) -> dict[str, Any]:
    return {
        "pipeline_type": "byom_realtime_custom",
        "model_name": "pulsar",
        "model_artifact_location": location,
        "custom_image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ancora-sagemaker:1",
        "inference_instance": "ml.m5.large",
        "data_capture_location": f"s3://{BUCKET}/capture",
        "endpoint_name": "pulsar",
        **changes,
    }


def test_sagemaker_target_provisions_on_the_aws_stand_in(
    aws: Settings, uploaded_model: str, moto_url: str
) -> None:
    with TestClient(create_app(aws)) as client:
        answer = client.post("/provisionpipeline", json=body(uploaded_model), headers=AUTH)
        assert answer.status_code == 200, answer.text
        assert answer.json()["message"] == "endpoint pulsar creating"
        state = client.post(
            "/pipelinestatus", json={"pipeline_id": answer.json()["pipeline_id"]}, headers=AUTH
        ).json()
        assert state["status"] == "Succeeded" and state["message"] == "InService"
        sagemaker = client_for(aws, "sagemaker")
        model = sagemaker.describe_model(ModelName=state["details"]["model"])
        assert model["PrimaryContainer"]["Image"].endswith("ancora-sagemaker:1")
        assert model["PrimaryContainer"]["ModelDataUrl"] == uploaded_model

        canned = {"results": [{"Body": '{"predictions": [1]}', "ContentType": "application/json"}]}
        httpx.post(f"{moto_url}/moto-api/static/sagemaker/endpoint-results", json=canned).raise_for_status()
        inference = client.post(
            "/inference", json={"payload": REFERENCE_ROW, "content_type": "text/csv"}, headers=AUTH
        )
        assert inference.json() == {"endpoint_name": "pulsar", "predictions": [1]}

        pipeline_id = answer.json()["pipeline_id"]
        deleted = client.post("/deletepipeline", json={"pipeline_id": pipeline_id}, headers=AUTH)
        assert deleted.status_code == 200, deleted.text
        details = state["details"]
        assert deleted.json()["message"] == (
            f"pipeline {pipeline_id} deleted: endpoint pulsar, endpoint config {details['endpoint_config']}, "
            f"model {details['model']}"
        )
        assert sagemaker.list_endpoints()["Endpoints"] == []
        assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
        assert sagemaker.list_models()["Models"] == []
        again = client.post("/deletepipeline", json={"pipeline_id": pipeline_id}, headers=AUTH)
        assert again.status_code == 200 and "already deleted" in again.json()["message"]
        after = client.post("/pipelinestatus", json={"pipeline_id": pipeline_id}, headers=AUTH).json()
        assert after["status"] == "Deleted"


def test_a_teardown_of_what_sagemaker_already_lost_still_succeeds_on_the_aws_stand_in(
    aws: Settings, uploaded_model: str
) -> None:
    """Deleted by hand in the console first: each missing resource counts as deleted, so a retry of a
    half-finished teardown is harmless."""
    with TestClient(create_app(aws)) as client:
        pipeline_id = client.post("/provisionpipeline", json=body(uploaded_model), headers=AUTH).json()[
            "pipeline_id"
        ]
        sagemaker = client_for(aws, "sagemaker")
        sagemaker.delete_endpoint(EndpointName="pulsar")
        [model] = sagemaker.list_models()["Models"]
        sagemaker.delete_model(ModelName=model["ModelName"])
        answer = client.post("/deletepipeline", json={"endpoint_name": "pulsar"}, headers=AUTH)
        assert answer.status_code == 200, answer.text
        assert answer.json()["deleted"] == [pipeline_id]
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []


def test_sagemaker_target_batch_runs_a_transform_job_on_the_aws_stand_in(
    aws: Settings, uploaded_model: str
) -> None:
    client_for(aws, "s3").put_object(Bucket=BUCKET, Key="batch/in.csv", Body=REFERENCE_ROW.encode())
    request = body(
        uploaded_model,
        pipeline_type="byom_batch_custom",
        batch_inference_data=f"s3://{BUCKET}/batch/in.csv",
        batch_job_output_location=f"s3://{BUCKET}/batch/out/",
    )
    request.pop("data_capture_location")
    request.pop("endpoint_name")
    with TestClient(create_app(aws)) as client:
        answer = client.post("/provisionpipeline", json=request, headers=AUTH)
        assert answer.status_code == 200, answer.text
        pipeline_id = answer.json()["pipeline_id"]
        deadline = time.monotonic() + 30
        while (
            state := client.post("/pipelinestatus", json={"pipeline_id": pipeline_id}, headers=AUTH).json()
        )["status"] == "InProgress":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert state["status"] == "Succeeded"
    job = client_for(aws, "sagemaker").describe_transform_job(
        TransformJobName=state["details"]["transform_job"]
    )
    assert job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/batch/in.csv"
    assert job["TransformOutput"]["S3OutputPath"] == f"s3://{BUCKET}/batch/out/"
    with TestClient(create_app(aws)) as client:
        deleted = client.post("/deletepipeline", json={"pipeline_id": pipeline_id}, headers=AUTH)
    assert deleted.status_code == 200, deleted.text
    assert client_for(aws, "sagemaker").list_models()["Models"] == []


def orchestrator_batch_body(model_location: str) -> dict[str, Any]:
    """A batch request with the orchestrator's scheme-less bucket/key locations."""
    request = body(
        model_location,
        pipeline_type="byom_batch_custom",
        batch_inference_data=f"{BUCKET}/batch/in.csv",
        batch_job_output_location=f"{BUCKET}/batch/out",
    )
    request.pop("data_capture_location")
    return request


def test_sagemaker_target_reads_orchestrator_locations_on_the_aws_stand_in(aws: Settings) -> None:
    """Scheme-less batch locations are bucket/key, as the orchestrator reads them; a local path is
    refused by the sagemaker target (it cannot reach this machine's disk)."""
    client_for(aws, "s3").put_object(Bucket=BUCKET, Key="model.tar.gz", Body=b"checked by SageMaker")
    client_for(aws, "s3").put_object(Bucket=BUCKET, Key="batch/in.csv", Body=REFERENCE_ROW.encode())
    request = orchestrator_batch_body("model.tar.gz")
    with TestClient(create_app(aws)) as client:
        answer = client.post("/provisionpipeline", json=request, headers=AUTH)
        assert answer.status_code == 200, answer.text
        local_capture = client.post(
            "/provisionpipeline",
            json=body("model.tar.gz", data_capture_location=str(aws.byom_data_roots[0])),
            headers=AUTH,
        )
    assert local_capture.status_code == 422
    assert "SageMaker captures to S3" in local_capture.json()["detail"]
    [summary] = client_for(aws, "sagemaker").list_transform_jobs()["TransformJobSummaries"]
    job = client_for(aws, "sagemaker").describe_transform_job(TransformJobName=summary["TransformJobName"])
    assert job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/batch/in.csv"
    assert job["TransformOutput"]["S3OutputPath"] == f"s3://{BUCKET}/batch/out"
    model = client_for(aws, "sagemaker").describe_model(ModelName=job["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{BUCKET}/model.tar.gz"


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (f"s3://{BUCKET}/models/missing/model.tar.gz", "not found"),
        ("s3://someone-elses-bucket/model.tar.gz", "outside the allowed roots"),
        (f"s3://{BUCKET}-evil/model.tar.gz", "outside the allowed roots"),
        ("models/missing/model.tar.gz", "not found"),
    ],
)
def test_sagemaker_target_refuses_bad_artifacts_and_creates_nothing(
    aws: Settings, location: str, expected: str
) -> None:
    with TestClient(create_app(aws)) as client:
        answer = client.post("/provisionpipeline", json=body(location), headers=AUTH)
    assert answer.status_code == 422 and expected in answer.json()["detail"]
    sagemaker = client_for(aws, "sagemaker")
    assert sagemaker.list_models()["Models"] == []
    assert sagemaker.list_endpoints()["Endpoints"] == []


def test_a_refused_update_undoes_what_it_created_on_the_aws_stand_in(
    aws: Settings, uploaded_model: str
) -> None:
    """moto lacks UpdateEndpoint, so a second deploy of ``pulsar`` fails there: a real refusal to undo."""
    headers = AUTH
    with TestClient(create_app(aws)) as client:
        assert (
            client.post("/provisionpipeline", json=body(uploaded_model), headers=headers).status_code == 200
        )
        again = client.post("/provisionpipeline", json=body(uploaded_model), headers=headers)
    assert again.status_code == 502 and "SageMaker refused the deploy" in again.json()["detail"]
    sagemaker = client_for(aws, "sagemaker")
    assert len(sagemaker.list_models()["Models"]) == 1
    assert len(sagemaker.list_endpoint_configs()["EndpointConfigs"]) == 1
    assert sagemaker.describe_endpoint(EndpointName="pulsar")["EndpointStatus"] == "InService"


def test_local_target_batch_reads_and_writes_s3_on_the_aws_stand_in(
    aws: Settings, uploaded_model: str, pulsar_csv: Path, tmp_path: Path
) -> None:
    """The orchestrator's batch body (bucket/key locations) on the local target: the CSV is fetched from
    S3, scored by the real model, and the predictions are written back next to where SageMaker would."""
    payload = tmp_path / "in.csv"
    labels = write_payload_csv(pulsar_csv, payload, rows=120, positives=30, seed=5)
    client_for(aws, "s3").upload_file(str(payload), BUCKET, "batch/in.csv")
    settings = aws.model_copy(update={"byom_target": "local", "byom_assets_root": f"s3://{BUCKET}/"})
    request = orchestrator_batch_body("models/pulsar/model.tar.gz")
    with TestClient(create_app(settings)) as client:
        answer = client.post("/provisionpipeline", json=request, headers=AUTH)
        assert answer.status_code == 200, answer.text
        assert answer.json()["message"] == f"batch job scoring {BUCKET}/batch/in.csv"
        pipeline_id = answer.json()["pipeline_id"]
        deadline = time.monotonic() + 120
        while (
            state := client.post("/pipelinestatus", json={"pipeline_id": pipeline_id}, headers=AUTH).json()
        )["status"] == "InProgress":
            assert time.monotonic() < deadline, state
            time.sleep(0.3)
        assert state["status"] == "Succeeded", state
        assert state["message"] == "scored 120 rows from 1 file(s)"
        missing = dict(request, batch_inference_data=f"{BUCKET}/batch/nothing-here/")
        refused = client.post("/provisionpipeline", json=missing, headers=AUTH)
        assert refused.status_code == 422 and "holds no CSV object" in refused.json()["detail"]
    written = client_for(aws, "s3").get_object(Bucket=BUCKET, Key="batch/out/in.csv.out")["Body"].read()
    predicted = [int(line) for line in written.decode().splitlines()]
    assert len(predicted) == 120
    assert sum(p == t for p, t in zip(predicted, labels, strict=True)) >= 108
    assert not (settings.state_dir / "provisioning" / "batch" / pipeline_id).exists()
