"""SageMaker (the sagemaker_pulsar DAG) and BYOM provisioning (`ancora provisioning`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from ancora.config.addresses import AddressSettings
from ancora.config.base import comma_separated, derived
from ancora.locations import PULSAR_CSV, shipped_dataset

MIN_PROVISIONING_TOKEN_LENGTH = 32
"""``secrets.token_urlsafe(24)`` is 32 characters: 192 random bits."""

Roots = Annotated[list[str], NoDecode, BeforeValidator(comma_separated)]


class SagemakerSettings(AddressSettings):
    """AWS and SageMaker: where jobs and endpoints run."""

    aws_region: str = Field(default="us-east-1", description="AWS region of the SageMaker and S3 calls.")
    aws_endpoint_url: str | None = Field(
        default=None,
        description="boto3 AWS endpoint override (moto in tests, a VPC endpoint); default: AWS's own.",
    )
    sagemaker_aws_conn_id: str = Field(
        default="aws_default",
        description="Airflow connection of the sagemaker_pulsar DAG (extra endpoint_url: moto in tests).",
    )
    sagemaker_role_arn: str = Field(
        default="arn:aws:iam::000000000000:role/AncoraSageMakerRole",
        description="IAM role SageMaker jobs and models run as; the default is a placeholder for moto.",
    )
    sagemaker_image_uri: str = Field(
        default="ancora-sagemaker:latest",
        description="Image (an ECR URI on AWS) of sagemaker/Dockerfile: training and built-in BYOM models.",
    )
    sagemaker_bucket: str = Field(
        default="ancora-sagemaker", description="S3 bucket for SageMaker training data, models and outputs."
    )
    sagemaker_training_instance_type: str = Field(
        default="ml.m5.large", description="Instance type of SageMaker training jobs."
    )
    sagemaker_inference_instance_type: str = Field(
        default="ml.m5.large", description="Instance type of the endpoint the sagemaker_pulsar DAG deploys."
    )
    sagemaker_max_runtime_seconds: int = Field(
        default=3600, ge=60, description="SageMaker stops a training job that runs longer than this."
    )
    pulsar_dataset_path: Path = Field(
        default=shipped_dataset(PULSAR_CSV),
        description="HTRU2 pulsar CSV (header row, label last) the sagemaker_pulsar DAG trains on; "
        "default: ancora/datasets/pulsar/HTRU_2.csv in the installed package.",
    )


class ProvisioningSettings(SagemakerSettings):
    """The BYOM provisioning API and its pipelines."""

    provisioning_db_url: str = derived(
        "SQLite under state_dir",
        lambda data: f"sqlite:///{data['state_dir'] / 'provisioning' / 'pipelines.db'}",
        "SQLAlchemy URL of the BYOM pipeline registry; default: SQLite under state_dir.",
    )
    byom_target: Literal["local", "sagemaker"] = Field(
        default="local",
        description="Where BYOM pipelines deploy: serve processes on this machine, or SageMaker (boto3).",
    )
    byom_artifact_roots: Roots = derived(
        "state_dir/provisioning/artifacts,s3://sagemaker_bucket/",
        lambda data: [
            str(data["state_dir"] / "provisioning" / "artifacts"),
            f"s3://{data['sagemaker_bucket']}/",
        ],
        "Comma-separated folders and s3://bucket/prefix that model.tar.gz may come from (its "
        "pickle is loaded: trusted); default: state_dir/provisioning/artifacts and s3://sagemaker_bucket.",
    )
    byom_max_model_bytes: int = Field(
        default=512 * 1024 * 1024, ge=1024, description="Largest model.tar.gz accepted, packed and unpacked."
    )
    byom_start_timeout_seconds: float = Field(
        default=60.0, gt=0, description="How long a local endpoint may take to answer /ping after a deploy."
    )
    byom_inference_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of one /inference call to an endpoint."
    )
    provisioning_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that may provision and delete BYOM pipelines (and read them); at least "
        "32 characters, not the same as ANCORA_ADMIN_TOKEN; unset: the provisioning API is closed.",
    )
    provisioning_read_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for /pipelinestatus and /inference of the provisioning API only; at "
        "least 32 characters; unset: only ANCORA_PROVISIONING_TOKEN reads.",
    )
    byom_assets_root: str = derived(
        "state_dir/provisioning/artifacts (local target), s3://sagemaker_bucket/ (sagemaker)",
        lambda data: (
            f"s3://{data['sagemaker_bucket']}/"
            if data["byom_target"] == "sagemaker"
            else str(data["state_dir"] / "provisioning" / "artifacts")
        ),
        "Where a relative model_artifact_location is read (the orchestrator's assets bucket); "
        "default: state_dir/provisioning/artifacts on the local target, s3://sagemaker_bucket on sagemaker.",
    )
    byom_data_roots: Roots = derived(
        "state_dir/provisioning/data,s3://sagemaker_bucket/",
        lambda data: [str(data["state_dir"] / "provisioning" / "data"), f"s3://{data['sagemaker_bucket']}/"],
        "Comma-separated folders and s3://bucket/prefix that data_capture_location, "
        "batch_inference_data and batch_job_output_location may name; default: "
        "state_dir/provisioning/data and s3://sagemaker_bucket.",
    )
    byom_capture_flush_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How often a local endpoint's captured requests are written to an s3:// "
        "data_capture_location (one object per endpoint and flush).",
    )

    @field_validator("byom_assets_root")
    @classmethod
    def _stripped(cls, value: str) -> str:
        return value.strip()

    @field_validator("provisioning_token", "provisioning_read_token")
    @classmethod
    def _long_provisioning_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """A guessable token would hand out deploys (a pickle runs code): refuse to start with one."""
        if value is None or not value.get_secret_value():
            return None
        length = len(value.get_secret_value())
        if length < MIN_PROVISIONING_TOKEN_LENGTH:
            raise ValueError(
                f"ANCORA_{str(info.field_name).upper()} has {length} characters; use at least "
                f"{MIN_PROVISIONING_TOKEN_LENGTH}, e.g. python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'"
            )
        return value
