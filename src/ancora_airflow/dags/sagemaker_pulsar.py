"""
### sagemaker_pulsar

Trains the pulsar detector (HTRU2) in SageMaker with Ancora's bring-your-own container and deploys it
to the real-time endpoint `pulsar`. Triggered by hand (no schedule).

* **prepare_training_data**: writes `ANCORA_PULSAR_DATASET_PATH` in SageMaker's CSV layout (no header,
  label first) to `s3://<ANCORA_SAGEMAKER_BUCKET>/pulsar/<run>/training/`.
* **train**: `SageMakerTrainingOperator`, image `ANCORA_SAGEMAKER_IMAGE_URI`, role
  `ANCORA_SAGEMAKER_ROLE_ARN`, instance `ANCORA_SAGEMAKER_TRAINING_INSTANCE_TYPE`.
* **create_model**: `SageMakerModelOperator` on the job's `model.tar.gz`.
* **deploy_endpoint**: `SageMakerEndpointOperator` creates the endpoint config and the endpoint
  `pulsar` (an existing one is updated).

Every AWS call goes through the Airflow connection `ANCORA_SAGEMAKER_AWS_CONN_ID` (`aws_default`); its
extra `endpoint_url` points the DAG at a stand-in such as moto. Configs come from
`ancora.sagemaker.configs`, the same builders the task service's runner and the BYOM API use.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerEndpointOperator,
    SageMakerModelOperator,
    SageMakerTrainingOperator,
)
from airflow.sdk import dag, get_current_context, task

from ancora.config import get_settings
from ancora.sagemaker.configs import (
    endpoint_config_config,
    endpoint_operator_config,
    model_config,
    training_job_config,
)

ENDPOINT_NAME = "pulsar"
PREPARED = "ti.xcom_pull(task_ids='prepare_training_data')"
SUFFIX = "{{ " + PREPARED + "['suffix'] }}"
MODEL_DATA = "{{ ti.xcom_pull(task_ids='train')['Training']['ModelArtifacts']['S3ModelArtifacts'] }}"

settings = get_settings()


@dag(
    dag_id="sagemaker_pulsar",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["ancora", "sagemaker", "pulsar"],
    doc_md=__doc__,
    default_args={
        "owner": "ancora",
        "retries": 1,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "aws_conn_id": settings.sagemaker_aws_conn_id,
    },
)
def sagemaker_pulsar() -> None:
    @task
    def prepare_training_data() -> dict[str, Any]:
        import tempfile
        from pathlib import Path

        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from ancora.sagemaker.configs import sagemaker_name, timestamp_suffix
        from ancora.sagemaker.data import write_training_csv

        current = get_settings()
        suffix = sagemaker_name(timestamp_suffix(), str(get_current_context()["run_id"]))[:40].strip("-")
        prefix = f"pulsar/{suffix}/training"
        with tempfile.TemporaryDirectory() as scratch:
            local = Path(scratch) / "train.csv"
            rows = write_training_csv(current.pulsar_dataset_path, local)
            S3Hook(aws_conn_id=current.sagemaker_aws_conn_id).load_file(
                str(local), key=f"{prefix}/train.csv", bucket_name=current.sagemaker_bucket, replace=True
            )
        return {
            "suffix": suffix,
            "training_data_uri": f"s3://{current.sagemaker_bucket}/{prefix}/",
            "rows": rows,
        }

    train = SageMakerTrainingOperator(
        task_id="train",
        config=training_job_config(
            settings,
            job_name=f"pulsar-{SUFFIX}",
            training_data_uri="{{ " + PREPARED + "['training_data_uri'] }}",
            hyperparameters={"model_name": "pulsar", "n_estimators": "100", "class_weight": "balanced"},
        ),
        wait_for_completion=True,
        print_log=False,
        check_interval=30,
        max_ingestion_time=settings.sagemaker_max_runtime_seconds + 600,
    )
    create_model = SageMakerModelOperator(
        task_id="create_model",
        config=model_config(
            settings,
            model_name=f"pulsar-{SUFFIX}",
            model_data_url=MODEL_DATA,
        ),
    )
    deploy_endpoint = SageMakerEndpointOperator(
        task_id="deploy_endpoint",
        config=endpoint_operator_config(
            endpoint_name=ENDPOINT_NAME,
            endpoint_config=endpoint_config_config(
                config_name=f"pulsar-{SUFFIX}",
                model_name=f"pulsar-{SUFFIX}",
                instance_type=settings.sagemaker_inference_instance_type,
            ),
        ),
        operation="create",
        wait_for_completion=True,
        check_interval=30,
    )

    prepare_training_data() >> train >> create_model >> deploy_endpoint


sagemaker_pulsar()
