"""Request bodies for SageMaker's CreateTrainingJob, CreateModel, CreateEndpointConfig and friends.

The Airflow provider's operators take these dicts as their ``config``; the task service's runner and
the BYOM ``sagemaker`` target pass the same dicts to boto3. One builder per request, so the DAG, the
runner and the provisioning API never disagree about role, image, bucket or instance types.
Values may be Jinja templates (the DAG passes ``{{ ... }}`` strings the operators render).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from ancora.config import Settings

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
"""SageMaker's rule for job, model, endpoint-config and endpoint names."""


def sagemaker_name(*parts: str) -> str:
    """A valid SageMaker name from free text: runs of other characters become one '-', 63 at most."""
    joined = "-".join(re.sub(r"[^a-zA-Z0-9]+", "-", part).strip("-") for part in parts if part)
    name = re.sub(r"-+", "-", joined)[:63].strip("-")
    if not name:
        raise ValueError(f"no usable characters for a SageMaker name in {parts!r}")
    return name


def timestamp_suffix(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


def s3_uri(bucket: str, *keys: str) -> str:
    return "s3://" + "/".join([bucket, *(key.strip("/") for key in keys if key)])


def training_job_config(
    settings: Settings,
    *,
    job_name: str,
    training_data_uri: str,
    output_uri: str | None = None,
    hyperparameters: dict[str, str] | None = None,
    instance_type: str | None = None,
    environment: dict[str, str] | None = None,
) -> dict[str, Any]:
    """CreateTrainingJob of the Ancora image: ``train`` reads the ``training`` channel (CSV, label first)."""
    config: dict[str, Any] = {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {
            "TrainingImage": settings.sagemaker_image_uri,
            "TrainingInputMode": "File",
        },
        "RoleArn": settings.sagemaker_role_arn,
        "HyperParameters": {key: str(value) for key, value in (hyperparameters or {}).items()},
        "InputDataConfig": [
            {
                "ChannelName": "training",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": training_data_uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": output_uri or s3_uri(settings.sagemaker_bucket, "models")},
        "ResourceConfig": {
            "InstanceType": instance_type or settings.sagemaker_training_instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": 10,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.sagemaker_max_runtime_seconds},
    }
    if environment:
        config["Environment"] = dict(environment)
    return config


def model_config(
    settings: Settings,
    *,
    model_name: str,
    model_data_url: str,
    image_uri: str | None = None,
) -> dict[str, Any]:
    """CreateModel: the image that serves (``serve`` on 8080) and the ``model.tar.gz`` it unpacks."""
    return {
        "ModelName": model_name,
        "PrimaryContainer": {
            "Image": image_uri or settings.sagemaker_image_uri,
            "ModelDataUrl": model_data_url,
        },
        "ExecutionRoleArn": settings.sagemaker_role_arn,
    }


def endpoint_config_config(
    *,
    config_name: str,
    model_name: str,
    instance_type: str,
    data_capture_uri: str | None = None,
) -> dict[str, Any]:
    """CreateEndpointConfig: one variant carrying all traffic, optional capture of requests and answers."""
    config: dict[str, Any] = {
        "EndpointConfigName": config_name,
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": model_name,
                "InitialInstanceCount": 1,
                "InstanceType": instance_type,
                "InitialVariantWeight": 1.0,
            }
        ],
    }
    if data_capture_uri:
        config["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": data_capture_uri,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        }
    return config


def endpoint_operator_config(
    *, endpoint_name: str, endpoint_config: dict[str, Any], model: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The nested shape ``SageMakerEndpointOperator`` takes: optional model, endpoint config, endpoint."""
    config: dict[str, Any] = {
        "EndpointConfig": endpoint_config,
        "Endpoint": {
            "EndpointName": endpoint_name,
            "EndpointConfigName": endpoint_config["EndpointConfigName"],
        },
    }
    if model is not None:
        config["Model"] = model
    return config


def transform_job_config(
    *,
    job_name: str,
    model_name: str,
    input_uri: str,
    output_uri: str,
    instance_type: str,
) -> dict[str, Any]:
    """CreateTransformJob: the model over CSV lines under ``input_uri``, predictions to ``output_uri``."""
    return {
        "TransformJobName": job_name,
        "ModelName": model_name,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "AssembleWith": "Line", "Accept": "text/csv"},
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": 1},
    }
