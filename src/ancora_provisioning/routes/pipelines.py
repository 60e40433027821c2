"""The MLOps Workload Orchestrator's BYOM endpoints: provision, ask for status, run inference, and
Ancora's teardown (``/deletepipeline``), which the orchestrator left to CloudFormation.

Handlers are plain ``def``: a deploy blocks (unpack, start, wait for ``/ping``), so FastAPI runs
them in its thread pool instead of stalling the event loop. Who may call each is decided by
``ancora_provisioning.gate`` before the body is read.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ancora.sagemaker.byom import ProvisionRequest
from ancora.sagemaker.configs import NAME_PATTERN
from ancora.sagemaker.provisioning import PipelineNotFound, pipeline_view
from ancora.sagemaker.targets import DeployError
from ancora_provisioning.dependencies import Documented, ProvisionerDep

router = APIRouter(tags=["byom"])


class ProvisionResponse(BaseModel):
    message: str
    pipeline_id: str


class StatusRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline_id: str = Field(min_length=1, max_length=64)


class DeleteRequest(BaseModel):
    """One of the two: a pipeline (what it deployed), or an endpoint (with every pipeline behind it)."""

    model_config = ConfigDict(extra="forbid")

    pipeline_id: str | None = Field(default=None, min_length=1, max_length=64)
    endpoint_name: str | None = Field(default=None, pattern=NAME_PATTERN.pattern)

    @model_validator(mode="after")
    def _exactly_one(self) -> DeleteRequest:
        if (self.pipeline_id is None) == (self.endpoint_name is None):
            raise ValueError("give exactly one of pipeline_id and endpoint_name")
        return self


class DeleteResponse(BaseModel):
    message: str
    deleted: list[str] = Field(description="The pipelines now Deleted.")


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payload: str | list[Any] | dict[str, Any] = Field(
        description="text/csv: rows without label, one per line; application/json: rows or {instances}."
    )
    content_type: str = Field(default="text/csv", max_length=100)
    endpoint_name: str | None = Field(
        default=None,
        pattern=NAME_PATTERN.pattern,
        description="Ancora addition: which endpoint; optional while only one is deployed.",
    )


class InferenceResponse(BaseModel):
    endpoint_name: str
    predictions: list[Any]


@router.post("/provisionpipeline", dependencies=[Documented], status_code=status.HTTP_200_OK)
def provision_pipeline(request: ProvisionRequest, provisioner: ProvisionerDep) -> ProvisionResponse:
    """Deploy a model: a real-time endpoint (same endpoint_name again: update) or a batch job."""
    try:
        provisioned = provisioner.provision(request)
    except DeployError as problem:
        raise HTTPException(problem.status_code, detail=str(problem)) from problem
    return ProvisionResponse(message=provisioned.message, pipeline_id=provisioned.pipeline_id)


@router.post("/pipelinestatus", dependencies=[Documented])
def pipeline_status(request: StatusRequest, provisioner: ProvisionerDep) -> dict[str, Any]:
    """The pipeline's state: InProgress, Succeeded, Failed or Deleted, with the reason."""
    try:
        return pipeline_view(provisioner.status(request.pipeline_id))
    except PipelineNotFound as problem:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(problem)) from problem


@router.post("/deletepipeline", dependencies=[Documented])
def delete_pipeline(request: DeleteRequest, provisioner: ProvisionerDep) -> DeleteResponse:
    """Tear down a pipeline's endpoint (or batch job), endpoint config and model; again is harmless."""
    try:
        if request.pipeline_id is not None:
            deleted = provisioner.delete_pipeline(request.pipeline_id)
        else:
            deleted = provisioner.delete_endpoint(str(request.endpoint_name))
    except PipelineNotFound as problem:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(problem)) from problem
    except DeployError as problem:
        raise HTTPException(problem.status_code, detail=str(problem)) from problem
    return DeleteResponse(message=deleted.message, deleted=deleted.pipeline_ids)


@router.post("/inference", response_model=InferenceResponse, dependencies=[Documented])
def inference(request: InferenceRequest, provisioner: ProvisionerDep) -> Any:
    """The endpoint's prediction; the endpoint's own 4xx (bad rows, content type) are passed on."""
    payload = request.payload if isinstance(request.payload, str) else json.dumps(request.payload)
    try:
        name, prediction = provisioner.inference(
            payload.encode(), request.content_type, request.endpoint_name
        )
    except DeployError as problem:
        raise HTTPException(problem.status_code, detail=str(problem)) from problem
    if prediction.status_code != 200:
        body = prediction.body
        detail = body.get("error", body) if isinstance(body, dict) else body
        return JSONResponse(status_code=prediction.status_code, content={"detail": detail})
    body = prediction.body
    predictions = body.get("predictions") if isinstance(body, dict) else None
    if not isinstance(predictions, list):
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail=f"endpoint {name} answered {body!r}")
    return InferenceResponse(endpoint_name=name, predictions=predictions)
