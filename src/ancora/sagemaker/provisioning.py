"""The BYOM provisioning service's logic: record a request, deploy it, report its state, tear it down.

The FastAPI face in ``ancora_provisioning`` only translates HTTP; everything a pipeline goes through is here,
so the CLI or a test drives the same path. One lock per endpoint name: a deploy and a teardown of one
endpoint never interleave, and work on different endpoints does not wait.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from ancora.config import Settings
from ancora.sagemaker.byom import ProvisionRequest
from ancora.sagemaker.locations import LocationError, resolve_locations
from ancora.sagemaker.registry import Pipeline, PipelineRegistry, PipelineStatus
from ancora.sagemaker.targets import DeployError, Prediction, Target, build_target

log = logging.getLogger(__name__)

PUBLIC_DETAILS = ("model", "endpoint_config", "transform_job")
"""What ``/pipelinestatus`` shows of a pipeline's details: SageMaker's names, never pids, ports or
server folders (those stay in the registry for the service itself)."""


class PipelineNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Provisioned:
    pipeline_id: str
    message: str


@dataclass(frozen=True)
class Deleted:
    pipeline_ids: list[str]
    message: str


class Provisioner:
    def __init__(self, settings: Settings, target: Target | None = None) -> None:
        self.settings = settings
        self.registry = PipelineRegistry(settings.provisioning_db_url)
        self.target = target or build_target(settings, self.registry)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def provision(self, request: ProvisionRequest) -> Provisioned:
        """Deploy, or raise DeployError (4xx for the caller's mistakes) with the pipeline marked Failed.

        Locations are resolved and checked before anything is recorded: a refused location leaves
        no pipeline behind."""
        try:
            resolved = resolve_locations(request, self.settings)
        except LocationError as problem:
            raise DeployError(422, str(problem)) from problem
        endpoint = resolved.target_endpoint if resolved.pipeline_type.realtime else None
        pipeline = self.registry.create(
            pipeline_type=resolved.pipeline_type.value,
            target=self.target.name,
            model_name=str(resolved.model_name),
            endpoint_name=endpoint,
            request=resolved.model_dump(exclude_none=True, mode="json"),
        )
        try:
            with self._lock(endpoint or pipeline.pipeline_id):
                outcome = self.target.provision(resolved, pipeline.pipeline_id)
        except LocationError as problem:
            self.registry.update(pipeline.pipeline_id, status=PipelineStatus.FAILED, message=str(problem))
            raise DeployError(422, str(problem)) from problem
        except DeployError as problem:
            self.registry.update(pipeline.pipeline_id, status=PipelineStatus.FAILED, message=str(problem))
            raise
        except Exception:
            log.exception("pipeline %s failed", pipeline.pipeline_id)
            message = "internal error (the provisioning service's log has the details)"
            self.registry.update(pipeline.pipeline_id, status=PipelineStatus.FAILED, message=message)
            raise
        self.registry.update(
            pipeline.pipeline_id, status=outcome.status, message=outcome.message, details=outcome.details
        )
        if outcome.follow_up is not None:
            outcome.follow_up()
        return Provisioned(pipeline.pipeline_id, outcome.message)

    def status(self, pipeline_id: str) -> Pipeline:
        pipeline = self.registry.get(pipeline_id)
        if pipeline is None:
            raise PipelineNotFound(f"no pipeline {pipeline_id!r}")
        if pipeline.status == PipelineStatus.IN_PROGRESS:
            outcome = self.target.refresh(pipeline)
            if outcome is not None:
                self.registry.update(
                    pipeline_id,
                    status=outcome.status,
                    message=outcome.message,
                    details=outcome.details,
                    only_if=PipelineStatus.IN_PROGRESS,
                )
                pipeline = self.registry.get(pipeline_id) or pipeline
        return pipeline

    def delete_pipeline(self, pipeline_id: str) -> Deleted:
        """Tear down what one pipeline deployed (its endpoint too, if it still serves it)."""
        pipeline = self.status(pipeline_id)
        with self._lock(pipeline.endpoint_name or pipeline.pipeline_id):
            message = self._delete(pipeline_id)
        return Deleted([pipeline_id], message)

    def delete_endpoint(self, endpoint_name: str) -> Deleted:
        """Tear down an endpoint and every pipeline that deployed to it, the one it serves first."""
        with self._lock(endpoint_name):
            endpoint = self.registry.endpoint(endpoint_name)
            pipeline_ids = self.registry.deployed_to(endpoint_name)
            if endpoint is None and not pipeline_ids:
                raise PipelineNotFound(f"no endpoint {endpoint_name!r}")
            if endpoint is not None and endpoint.pipeline_id in pipeline_ids:
                pipeline_ids.remove(endpoint.pipeline_id)
                pipeline_ids.insert(0, endpoint.pipeline_id)
            messages = [self._delete(pipeline_id) for pipeline_id in pipeline_ids]
        return Deleted(pipeline_ids, "; ".join(messages) or f"endpoint {endpoint_name} deleted")

    def _delete(self, pipeline_id: str) -> str:
        pipeline = self.status(pipeline_id)
        if pipeline.status == PipelineStatus.DELETED:
            return f"pipeline {pipeline_id} was already deleted"
        endpoint = self.registry.endpoint(pipeline.endpoint_name) if pipeline.endpoint_name else None
        serving = endpoint if endpoint is not None and endpoint.pipeline_id == pipeline_id else None
        removed = self.target.delete(pipeline, serving)
        message = f"pipeline {pipeline_id} deleted" + (f": {', '.join(removed)}" if removed else "")
        self.registry.update(pipeline_id, status=PipelineStatus.DELETED, message=message)
        log.info("%s", message)
        return message

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
    """What ``/pipelinestatus`` shows: the state, the reason, and SageMaker's names where there are any."""
    return {
        "pipeline_id": pipeline.pipeline_id,
        "pipeline_type": pipeline.pipeline_type,
        "target": pipeline.target,
        "status": pipeline.status.value,
        "message": pipeline.message,
        "model_name": pipeline.model_name,
        "endpoint_name": pipeline.endpoint_name,
        "details": {key: pipeline.details[key] for key in PUBLIC_DETAILS if key in pipeline.details},
        "created_at": pipeline.created_at.isoformat(),
        "updated_at": pipeline.updated_at.isoformat(),
    }
