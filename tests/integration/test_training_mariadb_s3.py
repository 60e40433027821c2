"""Training against the compose-shaped MLflow: MariaDB backend store, S3 artifacts on the moto server.

The MLflow server is started by mlflow/entrypoint.sh (`init`, then `server`), the entry point of the
compose image, with the moto server standing in for MinIO. Only the server process holds S3
credentials; the training client talks HTTP to the server alone.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ancora.config import Settings, get_settings
from ancora.store import open_raw_store
from ancora.training.model_io import load_pipeline
from ancora.training.run import TrainingRequest, train_and_register
from tests.support.databases import throwaway_mariadb
from tests.support.s3 import MinioStandIn, minio_stand_in_moto_server, running_compose_mlflow
from tests.support.training_data import read_csv_rows, store_rows

BUCKET = "mlflow"


@pytest.fixture(scope="module")
def mlflow_database() -> Iterator[str]:
    with throwaway_mariadb() as url:
        yield url


@pytest.fixture(scope="module")
def minio_stand_in() -> Iterator[MinioStandIn]:
    with minio_stand_in_moto_server() as s3:
        yield s3


@pytest.fixture(scope="module")
def compose_mlflow(
    tmp_path_factory: pytest.TempPathFactory, mlflow_database: str, minio_stand_in: MinioStandIn
) -> Iterator[str]:
    with running_compose_mlflow(
        tmp_path_factory.mktemp("compose-mlflow"),
        backend_store_uri=mlflow_database,
        artifacts_destination=f"s3://{BUCKET}/artifacts",
        extra_env=minio_stand_in.server_environment(),
    ) as url:
        yield url


@pytest.fixture
def settings(compose_mlflow: str, mariadb_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ANCORA_DATA_DB_URL", mariadb_url)
    monkeypatch.setenv("ANCORA_MLFLOW_TRACKING_URI", compose_mlflow)
    monkeypatch.setenv("ANCORA_REGISTERED_MODEL_NAME", f"covertype-{secrets.token_hex(3)}")
    monkeypatch.setenv("ANCORA_TRAIN_MIN_ROWS", "200")
    monkeypatch.setenv("ANCORA_TRAIN_N_JOBS", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    get_settings.cache_clear()
    return get_settings()


def test_training_on_mariadb_and_s3_registers_a_loadable_champion(
    settings: Settings, covertype_csv: Path, minio_stand_in: MinioStandIn
) -> None:
    rows = read_csv_rows(covertype_csv, limit=1500)
    store_rows(open_raw_store(settings.data_db_url), rows, batches=3)
    request = TrainingRequest.from_settings(settings, ["random_forest", "logistic_regression"], 1)
    outcome = train_and_register(settings, request)
    assert (outcome.version, outcome.decision) == ("1", "first")

    keys = [
        item["Key"]
        for page in minio_stand_in.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for item in page.get("Contents", [])
    ]
    assert any(key.endswith("model.skops") for key in keys), "model artifacts went to S3"
    assert any(key.endswith("confusion_matrix.png") for key in keys)

    pipeline = load_pipeline(f"models:/{settings.registered_model_name}@champion")
    assert len(pipeline.predict_proba(store_frame(rows[:5]))) == 5


def store_frame(rows: list[list[str]]) -> object:
    import pandas as pd

    from ancora.schema import FEATURE_NAMES, LABEL_NAME
    from ancora.training.data import with_raw_dtypes

    return with_raw_dtypes(pd.DataFrame(rows, columns=[*FEATURE_NAMES, LABEL_NAME]))[list(FEATURE_NAMES)]


def test_an_artifact_store_failure_registers_nothing_and_moves_no_alias(
    settings: Settings, covertype_csv: Path, minio_stand_in: MinioStandIn
) -> None:
    rows = read_csv_rows(covertype_csv, limit=1500)
    store_rows(open_raw_store(settings.data_db_url), rows, batches=3)
    request = TrainingRequest.from_settings(settings, ["logistic_regression"], 1)
    first = train_and_register(settings, request)
    client = MlflowClient(settings.mlflow_tracking_uri)
    name = settings.registered_model_name

    s3 = minio_stand_in.client()
    objects = [
        {"Key": item["Key"]}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for item in page.get("Contents", [])
    ]
    for start in range(0, len(objects), 1000):
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": objects[start : start + 1000]})
    s3.delete_bucket(Bucket=BUCKET)
    try:
        with pytest.raises(MlflowException):
            train_and_register(settings, request)
    finally:
        s3.create_bucket(Bucket=BUCKET)

    assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == [first.version]
    assert dict(client.get_registered_model(name).aliases) == {"champion": "1", "challenger": "1"}
