"""Where BYOM pipelines deploy: ``local`` (serve processes on this machine) and ``sagemaker`` (boto3).

Both take a validated request whose locations are already resolved and checked (``locations``), and
either finish the deploy or leave nothing behind. Both can tear down what a pipeline created.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ancora.config import Settings
from ancora.sagemaker.byom import ProvisionRequest
from ancora.sagemaker.registry import Endpoint, Pipeline, PipelineRegistry, PipelineStatus


class DeployError(Exception):
    """A provisioning, inference or teardown failure with the HTTP status the API answers."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class Outcome:
    status: PipelineStatus
    message: str
    details: dict[str, Any]
    follow_up: Callable[[], None] | None = None
    """Work that reports to the registry itself (a local batch job): started only once this outcome
    is recorded, so its own updates always come after, never before, the provisioner's."""


@dataclass(frozen=True)
class Prediction:
    status_code: int
    body: Any


class Target(Protocol):
    name: str

    def provision(self, request: ProvisionRequest, pipeline_id: str) -> Outcome: ...

    def refresh(self, pipeline: Pipeline) -> Outcome | None:
        """The pipeline's current state from the back end, or None when the registry's is final."""

    def invoke(self, endpoint: Endpoint, payload: bytes, content_type: str) -> Prediction: ...

    def delete(self, pipeline: Pipeline, endpoint: Endpoint | None) -> list[str]:
        """Tear down what ``pipeline`` created and still exists; ``endpoint`` is the endpoint it serves
        (None when it serves none, or was replaced). Returns what was removed, for the message.
        Idempotent: what is already gone counts as removed."""

    def start(self) -> None: ...

    def close(self) -> None: ...


def build_target(settings: Settings, registry: PipelineRegistry) -> Target:
    if settings.byom_target == "sagemaker":
        from ancora.sagemaker.sagemaker_target import SageMakerTarget

        return SageMakerTarget(settings, registry)
    from ancora.sagemaker.local_target import LocalTarget

    return LocalTarget(settings, registry)
