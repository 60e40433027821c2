"""The MLflow run of an ``mlflow``-mode task, created by the service before its job starts.

Creating the run up front is what lets ``get_task_run_id()`` answer while the job is still queued or
running; the job is handed the run (``MLFLOW_RUN_ID``, and ``mlflow run --run-id``) and logs into
it. For ``mlflow run`` commands the service logs the ``-P`` parameters itself, as ``mlflow run``
does for a run it creates. When the job ends without closing its run (killed, cancelled, a script
that never called ``start_run``) the service closes it with the task's outcome.
"""

from __future__ import annotations

import logging
import os
import shlex
from typing import TYPE_CHECKING, Any

from ancora.remote.jobs import ParamValue, is_mlflow_run, param_text
from ancora.remote.status import TaskStatus

if TYPE_CHECKING:
    from ancora.remote.store import Task

log = logging.getLogger(__name__)

HTTP_TIMEOUT_SECONDS = 15
HTTP_MAX_RETRIES = 2
"""MLflow's client defaults (120 s, 7 retries with backoff) would hold a submission for minutes while
the tracking server is down; the submitter should hear about it in seconds."""

RUN_STATUS = {
    TaskStatus.COMPLETED: "FINISHED",
    TaskStatus.FAILED: "FAILED",
    TaskStatus.CANCELLED: "KILLED",
}

TAG_TASK_ID = "ancora.task_id"
TAG_RUNNER_LOCATION = "ancora.runner_location"
TAG_DATASET = "ancora.dataset_name"


class TrackingUnavailable(RuntimeError):
    """The task's MLflow run could not be created; the message names the server and the reason."""


def warm_up() -> None:
    """Import the MLflow client ahead of need: the first ``mlflow``-mode submission would otherwise
    wait for the import (about 5 s on a busy 2-core machine, measured by benchmarks/remote_latency)."""
    try:
        from mlflow import MlflowClient  # noqa: F401
    except Exception as problem:
        log.warning("the MLflow client could not be imported: %s", problem)


def _client(tracking_uri: str) -> Any:
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(HTTP_TIMEOUT_SECONDS)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(HTTP_MAX_RETRIES)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def create_task_run(task: Task) -> str:
    """A new RUNNING run in the task's experiment (created if missing), tagged with task and user."""
    from mlflow.exceptions import MlflowException

    if not task.tracking_uri:
        raise TrackingUnavailable("the task has no MLflow tracking URI (ANCORA_MLFLOW_TRACKING_URI)")
    client = _client(task.tracking_uri)
    try:
        experiment = client.get_experiment_by_name(task.experiment_name)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            try:
                experiment_id = client.create_experiment(task.experiment_name)
            except MlflowException:
                again = client.get_experiment_by_name(task.experiment_name)
                if again is None:
                    raise
                experiment_id = again.experiment_id
        run = client.create_run(
            experiment_id,
            tags={
                "mlflow.user": task.owner,
                "mlflow.source.name": "ancora task service",
                TAG_TASK_ID: task.id,
                TAG_RUNNER_LOCATION: task.runner_location,
                TAG_DATASET: task.dataset_name,
            },
        )
        if _is_mlflow_run(task.execution_command) and task.model_params:
            client.log_batch(run.info.run_id, params=_params(task.model_params))
    except Exception as problem:
        raise TrackingUnavailable(f"MLflow at {task.tracking_uri}: {problem}") from problem
    return str(run.info.run_id)


def close_task_run(task: Task, status: TaskStatus) -> None:
    """End the task's run with the task's outcome unless the job already ended it."""
    if not task.mlflow_run_id or not task.tracking_uri or status not in RUN_STATUS:
        return
    client = _client(task.tracking_uri)
    try:
        run = client.get_run(task.mlflow_run_id)
        if run.info.status in ("RUNNING", "SCHEDULED"):
            client.set_terminated(task.mlflow_run_id, RUN_STATUS[status])
    except Exception as problem:
        log.warning("task %s: MLflow run %s not closed: %s", task.id, task.mlflow_run_id, problem)


def _is_mlflow_run(command: str) -> bool:
    try:
        return is_mlflow_run(shlex.split(command))
    except ValueError:
        return False


def _params(model_params: dict[str, ParamValue]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(name, param_text(value)) for name, value in model_params.items()]
