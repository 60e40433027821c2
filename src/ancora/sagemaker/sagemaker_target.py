"""The ``sagemaker`` BYOM target: model, endpoint config and endpoint (or transform job) through boto3.

If SageMaker refuses a step, the model and endpoint config created for that request are deleted. An
existing endpoint of the same name is switched by UpdateEndpoint. Teardown deletes the endpoint, its
endpoint config and its model, treating what is already gone as deleted, so a retry is harmless.
"""

from __future__ import annotations

import json
import logging

from ancora.config import Settings
from ancora.sagemaker.aws import aws_client
from ancora.sagemaker.byom import ArtifactError, ProvisionRequest
from ancora.sagemaker.configs import (
    endpoint_config_config,
    model_config,
    sagemaker_name,
    timestamp_suffix,
    transform_job_config,
)
from ancora.sagemaker.locations import LocationError, is_s3, parse_s3
from ancora.sagemaker.registry import Endpoint, Pipeline, PipelineRegistry, PipelineStatus
from ancora.sagemaker.targets import DeployError, Outcome, Prediction

log = logging.getLogger(__name__)

ENDPOINT_STATES = {
    "InService": PipelineStatus.SUCCEEDED,
    "Failed": PipelineStatus.FAILED,
    "OutOfService": PipelineStatus.FAILED,
}
JOB_STATES = {
    "Completed": PipelineStatus.SUCCEEDED,
    "Failed": PipelineStatus.FAILED,
    "Stopped": PipelineStatus.FAILED,
}


def _already_gone(problem: Exception) -> bool:
    """SageMaker answers a delete of something absent with a ValidationException "Could not find"."""
    error = getattr(problem, "response", {}).get("Error", {})
    return error.get("Code") in ("ValidationException", "ResourceNotFound") and (
        "not find" in error.get("Message", "").lower() or "does not exist" in error.get("Message", "").lower()
    )


class SageMakerTarget:
    name = "sagemaker"

    def __init__(self, settings: Settings, registry: PipelineRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.sagemaker = aws_client(settings, "sagemaker")
        self.runtime = aws_client(settings, "sagemaker-runtime")
        self.s3 = aws_client(settings, "s3")

    def _check_s3(self, location: str, field: str, shown: str, error: type[LocationError]) -> None:
        from botocore.exceptions import ClientError

        if not is_s3(location):
            raise error(f"{field} {shown!r}: the sagemaker target needs S3 (bucket/key or s3://)")
        target = parse_s3(location, field)
        try:
            if target.key and not target.key.endswith("/"):
                self.s3.head_object(Bucket=target.bucket, Key=target.key)
            else:
                self.s3.head_bucket(Bucket=target.bucket)
        except ClientError as problem:
            raise error(f"{field} {shown!r} not found: {problem}") from problem

    def provision(self, request: ProvisionRequest, pipeline_id: str) -> Outcome:
        from botocore.exceptions import ClientError

        location = str(request.model_artifact_location)
        self._check_s3(location, "model_artifact_location", request.shown_artifact, ArtifactError)
        if request.pipeline_type.realtime:
            capture = request.data_capture_location
            if capture and not is_s3(capture):
                raise LocationError(
                    f"data_capture_location {request.shown('data_capture_location')!r}: SageMaker "
                    "captures to S3 (bucket/prefix)"
                )
        else:
            self._check_s3(
                str(request.batch_inference_data),
                "batch_inference_data",
                request.shown("batch_inference_data"),
                LocationError,
            )
            if not is_s3(str(request.batch_job_output_location)):
                raise LocationError(
                    f"batch_job_output_location {request.shown('batch_job_output_location')!r}: the "
                    "sagemaker target writes to S3 (bucket/prefix)"
                )
        suffix = f"{timestamp_suffix()}-{pipeline_id[:8]}"
        model_name = sagemaker_name(str(request.model_name), suffix)
        image = request.custom_image_uri if not request.pipeline_type.builtin else None
        created: list[tuple[str, dict[str, str]]] = []
        try:
            self.sagemaker.create_model(
                **model_config(self.settings, model_name=model_name, model_data_url=location, image_uri=image)
            )
            created.append(("delete_model", {"ModelName": model_name}))
            if request.pipeline_type.realtime:
                return self._endpoint(request, pipeline_id, model_name, suffix, created)
            job_name = sagemaker_name(str(request.model_name), "batch", suffix)
            self.sagemaker.create_transform_job(
                **transform_job_config(
                    job_name=job_name,
                    model_name=model_name,
                    input_uri=str(request.batch_inference_data),
                    output_uri=str(request.batch_job_output_location),
                    instance_type=str(request.inference_instance),
                )
            )
            details = {"model": model_name, "transform_job": job_name}
            return Outcome(PipelineStatus.IN_PROGRESS, f"transform job {job_name} started", details)
        except ClientError as problem:
            for method, arguments in reversed(created):
                try:
                    getattr(self.sagemaker, method)(**arguments)
                except ClientError:
                    log.exception("could not undo %s(%s)", method, arguments)
            raise DeployError(502, f"SageMaker refused the deploy: {problem}") from problem

    def _endpoint(
        self,
        request: ProvisionRequest,
        pipeline_id: str,
        model_name: str,
        suffix: str,
        created: list[tuple[str, dict[str, str]]],
    ) -> Outcome:
        from botocore.exceptions import ClientError

        endpoint = request.target_endpoint
        config_name = sagemaker_name(endpoint, suffix)
        self.sagemaker.create_endpoint_config(
            **endpoint_config_config(
                config_name=config_name,
                model_name=model_name,
                instance_type=str(request.inference_instance),
                data_capture_uri=request.data_capture_location,
            )
        )
        created.append(("delete_endpoint_config", {"EndpointConfigName": config_name}))
        try:
            self.sagemaker.describe_endpoint(EndpointName=endpoint)
            exists = True
        except ClientError:
            exists = False
        if exists:
            self.sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)
        else:
            self.sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)
        details = {"model": model_name, "endpoint_config": config_name}
        self.registry.put_endpoint(
            endpoint,
            target=self.name,
            pipeline_id=pipeline_id,
            details=details,
            data_capture_location=request.data_capture_location,
        )
        verb = "updating" if exists else "creating"
        return Outcome(PipelineStatus.IN_PROGRESS, f"endpoint {endpoint} {verb}", details)

    def refresh(self, pipeline: Pipeline) -> Outcome | None:
        from botocore.exceptions import ClientError

        if pipeline.status != PipelineStatus.IN_PROGRESS:
            return None
        try:
            if "transform_job" in pipeline.details:
                described = self.sagemaker.describe_transform_job(
                    TransformJobName=pipeline.details["transform_job"]
                )
                state = described["TransformJobStatus"]
                status = JOB_STATES.get(state, PipelineStatus.IN_PROGRESS)
            else:
                described = self.sagemaker.describe_endpoint(EndpointName=pipeline.endpoint_name)
                state = described["EndpointStatus"]
                status = ENDPOINT_STATES.get(state, PipelineStatus.IN_PROGRESS)
        except ClientError as problem:
            return Outcome(PipelineStatus.FAILED, f"SageMaker lost track of it: {problem}", pipeline.details)
        message = f"{state}: {described['FailureReason']}" if described.get("FailureReason") else state
        return Outcome(status, message, pipeline.details)

    def invoke(self, endpoint: Endpoint, payload: bytes, content_type: str) -> Prediction:
        from botocore.exceptions import ClientError

        try:
            answer = self.runtime.invoke_endpoint(
                EndpointName=endpoint.endpoint_name,
                ContentType=content_type,
                Accept="application/json",
                Body=payload,
            )
        except ClientError as problem:
            error = problem.response.get("Error", {})
            status = int(problem.response.get("OriginalStatusCode") or 502)
            return Prediction(status, {"error": error.get("Message", str(problem))})
        text = answer["Body"].read().decode()
        try:
            return Prediction(200, json.loads(text))
        except json.JSONDecodeError:
            return Prediction(200, text)

    def delete(self, pipeline: Pipeline, endpoint: Endpoint | None) -> list[str]:
        """DeleteEndpoint (when the pipeline serves it), StopTransformJob (while it runs),
        DeleteEndpointConfig and DeleteModel; each step that finds nothing counts as done."""
        from botocore.exceptions import ClientError

        details = pipeline.details
        steps: list[tuple[str, str, dict[str, str]]] = []
        if endpoint is not None:
            name = endpoint.endpoint_name
            steps.append(("delete_endpoint", f"endpoint {name}", {"EndpointName": name}))
        if details.get("transform_job") and pipeline.status == PipelineStatus.IN_PROGRESS:
            job = details["transform_job"]
            steps.append(("stop_transform_job", f"transform job {job} (stopped)", {"TransformJobName": job}))
        if details.get("endpoint_config"):
            config = details["endpoint_config"]
            steps.append(
                ("delete_endpoint_config", f"endpoint config {config}", {"EndpointConfigName": config})
            )
        if details.get("model"):
            steps.append(("delete_model", f"model {details['model']}", {"ModelName": details["model"]}))
        removed: list[str] = []
        for method, label, arguments in steps:
            try:
                getattr(self.sagemaker, method)(**arguments)
            except ClientError as problem:
                finished_job = method == "stop_transform_job" and "status" in str(problem).lower()
                if not (_already_gone(problem) or finished_job):
                    raise DeployError(502, f"SageMaker refused to delete the {label}: {problem}") from problem
            removed.append(label)
        if endpoint is not None:
            self.registry.remove_endpoint(endpoint.endpoint_name)
        return removed

    def start(self) -> None:
        """Nothing to restart: SageMaker keeps its endpoints."""

    def close(self) -> None:
        """boto3 clients hold no resources worth releasing."""
