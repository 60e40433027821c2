"""The BYOM provisioning service's logic: record a request, deploy it on the target, report its state.

The FastAPI face in ``provisioning/`` only translates HTTP; everything a pipeline goes through is here,
so the CLI or a test drives the same path. One lock per endpoint name: two deploys of one endpoint
never interleave, and deploys of different endpoints do not wait for each other.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from ancora.config import Settings
from ancora.sagemaker.byom import ArtifactError, ProvisionRequest
from ancora.sagemaker.registry import Pipeline, PipelineRegistry, PipelineStatus
from ancora.sagemaker.targets import DeployError, Prediction, Target, build_target


class PipelineNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Provisioned:
    pipeline_id: str
    message: str


class Provisioner:
    def __init__(self, settings: Settings, target: Target | None = None) -> None:
        self.settings = settings
        self.registry = PipelineRegistry(settings.resolved_provisioning_db_url)
        self.target = target or build_target(settings, self.registry)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def provision(self, request: ProvisionRequest) -> Provisioned:
        """Deploy, or raise DeployError (4xx for the caller's mistakes) with the pipeline marked Failed."""
        endpoint = request.target_endpoint if request.pipeline_type.realtime else None
        pipeline = self.registry.create(
            pipeline_type=request.pipeline_type.value,
            target=self.target.name,
            model_name=str(request.model_name),
            endpoint_name=endpoint,
            request=request.model_dump(exclude_none=True, mode="json"),
        )
        try:
            with self._lock(endpoint or pipeline.pipeline_id):
                outcome = self.target.provision(request, pipeline.pipeline_id)
        except ArtifactError as problem:
            self.registry.update(pipeline.pipeline_id, status=PipelineStatus.FAILED, message=str(problem))
            raise DeployError(422, str(problem)) from problem
        except DeployError as problem:
            self.registry.update(pipeline.pipeline_id, status=PipelineStatus.FAILED, message=str(problem))
            raise
        except Exception as problem:
            message = f"{type(problem).__name__}: {problem}"
            self.registry.update(pipeline.pipeline_id, status=PipelineStatus.FAILED, message=message)
            raise
        self.registry.update(
            pipeline.pipeline_id, status=outcome.status, message=outcome.message, details=outcome.details
        )
        return Provisioned(pipeline.pipeline_id, outcome.message)

    def status(self, pipeline_id: str) -> Pipeline:
        pipeline = self.registry.get(pipeline_id)
        if pipeline is None:
            raise PipelineNotFound(f"no pipeline {pipeline_id!r}")
        if pipeline.status == PipelineStatus.IN_PROGRESS:
            outcome = self.target.refresh(pipeline)
            if outcome is not None:
                self.registry.update(
                    pipeline_id, status=outcome.status, message=outcome.message, details=outcome.details
                )
                pipeline = self.registry.get(pipeline_id) or pipeline
        return pipeline

    def inference(
        self, payload: bytes, content_type: str, endpoint_name: str | None
    ) -> tuple[str, Prediction]:
        """Ask the named endpoint, or the only one when none is named (the orchestrator has no such key)."""
        if endpoint_name is None:
            known = self.registry.endpoints()
            if len(known) != 1:
                names = sorted(endpoint.endpoint_name for endpoint in known)
                raise DeployError(422, f"name the endpoint (endpoint_name); deployed endpoints: {names}")
            endpoint = known[0]
        else:
            found = self.registry.endpoint(endpoint_name)
            if found is None:
                raise DeployError(404, f"no endpoint {endpoint_name!r}")
            endpoint = found
        return endpoint.endpoint_name, self.target.invoke(endpoint, payload, content_type)

    def start(self) -> None:
        self.target.start()

    def close(self) -> None:
        self.target.close()
        self.registry.dispose()


def pipeline_view(pipeline: Pipeline) -> dict[str, Any]:
    """What ``/pipelinestatus`` shows: the state and where the pipeline's result lives."""
    return {
        "pipeline_id": pipeline.pipeline_id,
        "pipeline_type": pipeline.pipeline_type,
        "target": pipeline.target,
        "status": pipeline.status.value,
        "message": pipeline.message,
        "model_name": pipeline.model_name,
        "endpoint_name": pipeline.endpoint_name,
        "details": pipeline.details,
        "created_at": pipeline.created_at.isoformat(),
        "updated_at": pipeline.updated_at.isoformat(),
    }
