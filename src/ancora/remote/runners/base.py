"""The runner interface: one class per place a job can run, registered by its kind's name.

The service and the Airflow DAG only know this interface; ``runner_location`` names in settings
map to a kind (``ANCORA_REMOTE_LOCATIONS``), and a kind to a class here. A new back end (SageMaker)
is one more subclass decorated with ``@register_runner("sagemaker")`` in a module listed in
``RUNNER_MODULES``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from ancora.config import Settings
from ancora.remote.jobs import JobRequest
from ancora.remote.status import TaskStatus

RUNNER_MODULES: dict[str, str] = {
    "local": "ancora.remote.runners.local",
    "hpc": "ancora.remote.runners.hpc",
    "sagemaker": "ancora.sagemaker.runner",
}
"""Where each kind's class lives; imported on first use so the service never loads paramiko or
boto3 for a kind nobody configured."""

_REGISTRY: dict[str, type[Runner]] = {}


@dataclass(frozen=True)
class Submission:
    """A job as its runner knows it: the runner's own id and the folder it runs in."""

    job_id: str
    work_dir: str


@dataclass(frozen=True)
class JobState:
    status: TaskStatus
    detail: str = ""


class Runner(ABC):
    """Submits, follows and cancels jobs in one kind of place; must be safe to rebuild at any time."""

    kind: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def check(self, instance_type: str, account: str) -> None:  # noqa: B027
        """Refuse, with InvalidJob, what this runner cannot place (before anything is stored)."""

    @abstractmethod
    def submit(self, job: JobRequest) -> Submission:
        """Start the job; return as soon as the back end has accepted it."""

    @abstractmethod
    def poll(self, submission: Submission) -> JobState: ...

    @abstractmethod
    def cancel(self, submission: Submission) -> None:
        """Ask the back end to stop the job; a job that already ended is not an error."""

    @abstractmethod
    def logs(self, submission: Submission, tail_bytes: int) -> str:
        """The end of the job's output, as text."""

    def remove(self, submission: Submission) -> None:  # noqa: B027
        """Delete the job's files where it ran (the retention calls this); the default keeps none."""

    def close(self) -> None:  # noqa: B027
        """Release connections; the default holds none."""


def register_runner(kind: str) -> Callable[[type[Runner]], type[Runner]]:
    def register(cls: type[Runner]) -> type[Runner]:
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return register


def runner_class(kind: str) -> type[Runner]:
    if kind not in _REGISTRY:
        module = RUNNER_MODULES.get(kind)
        if module is None:
            raise KeyError(f"no runner of kind {kind!r}; known kinds: {sorted(RUNNER_MODULES)}")
        importlib.import_module(module)
    return _REGISTRY[kind]


def build_runner(kind: str, settings: Settings) -> Runner:
    return runner_class(kind)(settings)
