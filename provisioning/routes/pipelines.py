"""The MLOps Workload Orchestrator's BYOM endpoints: provision, ask for status, run inference.

Handlers are plain ``def``: a deploy blocks (unpack, start, wait for ``/ping``), so FastAPI runs
them in its thread pool instead of stalling the event loop.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ancora.sagemaker.byom import ProvisionRequest
from ancora.sagemaker.provisioning import PipelineNotFound, pipeline_view
from ancora.sagemaker.targets import DeployError
from provisioning.dependencies import AdminDep, ProvisionerDep

router = APIRouter(tags=["byom"])


class ProvisionResponse(BaseModel):
    message: str
    pipeline_id: str


class StatusRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline_id: str = Field(min_length=1, max_length=64)


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payload: str | list[Any] | dict[str, Any] = Field(
        description="text/csv: rows without label, one per line; application/json: rows or {instances}."
    )
    content_type: str = Field(default="text/csv", max_length=100)
    endpoint_name: str | None = Field(
        default=None, description="Ancora addition: which endpoint; optional while only one is deployed."
    )


class InferenceResponse(BaseModel):
    endpoint_name: str
    predictions: list[Any]


@router.post("/provisionpipeline", dependencies=[AdminDep], status_code=status.HTTP_200_OK)
def provision_pipeline(request: ProvisionRequest, provisioner: ProvisionerDep) -> ProvisionResponse:
    """Deploy a model: a real-time endpoint (same endpoint_name again: update) or a batch job."""
    try:
        provisioned = provisioner.provision(request)
    except DeployError as problem:
        raise HTTPException(problem.status_code, detail=str(problem)) from problem
    return ProvisionResponse(message=provisioned.message, pipeline_id=provisioned.pipeline_id)


@router.post("/pipelinestatus")
def pipeline_status(request: StatusRequest, provisioner: ProvisionerDep) -> dict[str, Any]:
    """The pipeline's state: InProgress, Succeeded or Failed, with the reason."""
    try:
        return pipeline_view(provisioner.status(request.pipeline_id))
    except PipelineNotFound as problem:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(problem)) from problem


@router.post("/inference", response_model=InferenceResponse)
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
