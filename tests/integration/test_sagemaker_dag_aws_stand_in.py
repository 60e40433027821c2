"""sagemaker_pulsar run with dag.test() against moto's server, the AWS stand-in.

Exercised for real: the DAG's parsing, the prepare task (pulsar data reshaped and uploaded through
S3Hook), template rendering of the configs, and every request the Amazon provider's training, model
and endpoint operators send, through the ``aws_default`` connection whose extra ``endpoint_url``
points at moto. Not exercised: the container itself (moto runs none; the training job is
``Completed`` at once and no model.tar.gz appears; the native tests run ``train`` and ``serve``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from ancora.config import get_settings
from tests.support.sagemaker import FAKE_AWS_ENV, moto_server

BUCKET = "ancora-sagemaker"


@pytest.fixture
def moto_connection(monkeypatch: pytest.MonkeyPatch, pulsar_csv: Path) -> Iterator[str]:
    with moto_server() as url:
        httpx.post(f"{url}/moto-api/reset").raise_for_status()
        for name, value in FAKE_AWS_ENV.items():
            monkeypatch.setenv(name, value)
        connection = {"conn_type": "aws", "extra": {"endpoint_url": url, "region_name": "us-east-1"}}
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
        monkeypatch.setenv("ANCORA_PULSAR_DATASET_PATH", str(pulsar_csv))
        get_settings.cache_clear()
        boto3.client("s3", region_name="us-east-1", endpoint_url=url).create_bucket(Bucket=BUCKET)
        yield url


def run_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from ancora.locations import dags_folder

    dag = DagBag(dag_folder=str(dags_folder() / "sagemaker_pulsar.py")).get_dag("sagemaker_pulsar")
    assert dag is not None
    return dag.test()


def test_dag_trains_and_deploys_pulsar_on_the_aws_stand_in(airflow_db: None, moto_connection: str) -> None:
    run = run_dag()
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states == {
        "prepare_training_data": "success",
        "train": "success",
        "create_model": "success",
        "deploy_endpoint": "success",
    }, states
    sagemaker = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=moto_connection)
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_connection)
    [job] = sagemaker.list_training_jobs()["TrainingJobSummaries"]
    described = sagemaker.describe_training_job(TrainingJobName=job["TrainingJobName"])
    assert described["TrainingJobName"].startswith("pulsar-") and "{{" not in described["TrainingJobName"]
    training_uri = described["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    key = training_uri.removeprefix(f"s3://{BUCKET}/") + "train.csv"
    first_line = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()[0]
    assert (
        first_line
        == "0,140.5625,55.68378214,-0.234571412,-0.699648398,3.199832776,19.11042633,7.975531794,74.24222492"
    )
    [model] = sagemaker.list_models()["Models"]
    model_data = sagemaker.describe_model(ModelName=model["ModelName"])["PrimaryContainer"]["ModelDataUrl"]
    assert model_data == described["ModelArtifacts"]["S3ModelArtifacts"]
    endpoint = sagemaker.describe_endpoint(EndpointName="pulsar")
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == model["ModelName"]
