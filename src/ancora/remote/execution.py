"""Starting, following and cancelling a stored task, the same way for the service and the DAG.

Whoever drives a task (the ``remote_task`` DAG run, or the service itself when
``ANCORA_REMOTE_EXECUTOR=inline``) calls these functions; the database row is the truth both read.
Every step is idempotent: a retried ``start`` of a task that already has a job id does not submit
twice, an ``mlflow``-mode task gets one MLflow run however often it is started, and an outcome is
recorded once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ancora.config import Settings
from ancora.remote import tracking
from ancora.remote.jobs import JobRequest, build_argv, find_mlflow_run_id, job_environment
from ancora.remote.runners.base import JobState, Runner, Submission, build_runner
from ancora.remote.status import TaskStatus
from ancora.remote.store import Task, TaskStore

log = logging.getLogger(__name__)


@dataclass
class Runners:
    """One runner per kind, kept so the HPC runner's SSH connection is reused across polls."""

    settings: Settings

    def __post_init__(self) -> None:
        self._built: dict[str, Runner] = {}

    def __call__(self, kind: str) -> Runner:
        if kind not in self._built:
            self._built[kind] = build_runner(kind, self.settings)
        return self._built[kind]

    def close(self) -> None:
        for runner in self._built.values():
            runner.close()
        self._built.clear()


def job_request(task: Task, settings: Settings) -> JobRequest:
    folder = Path(task.local_dir)
    mlflow_mode = task.execution_mode == "mlflow"
    return JobRequest(
        task_id=task.id,
        argv=build_argv(
            task.execution_command,
            task.model_params,
            env_manager=settings.remote_mlflow_env_manager if mlflow_mode else None,
            mlflow_run_id=task.mlflow_run_id if mlflow_mode else None,
        ),
        environment=job_environment(
            task_id=task.id,
            execution_mode=task.execution_mode,
            experiment_name=task.experiment_name,
            tracking_uri=task.tracking_uri,
            dataset_name=task.dataset_name,
            dataset_dir=str(folder / "work" / "dataset"),
            model_params=task.model_params,
            mlflow_run_id=task.mlflow_run_id,
        ),
        instance_type=task.instance_type,
        account=task.account,
        dataset_zip=str(folder / "upload" / "dataset.zip"),
        processor_zip=str(folder / "upload" / "processor.zip"),
        local_work_dir=str(folder),
        model_params=task.model_params,
    )


def submission_of(task: Task) -> Submission | None:
    if task.job_id is None or task.work_dir is None:
        return None
    return Submission(job_id=task.job_id, work_dir=task.work_dir)


def open_mlflow_run(store: TaskStore, task: Task) -> Task:
    """Give an ``mlflow``-mode task its MLflow run, once; TrackingUnavailable when MLflow refuses."""
    if task.execution_mode != "mlflow" or task.mlflow_run_id is not None:
        return task
    run_id = tracking.create_task_run(task)
    return store.update(task.id, mlflow_run_id=run_id)


def end_task(store: TaskStore, task_id: str, status: TaskStatus, **values: object) -> Task:
    """Record an outcome once, and close the task's MLflow run with it."""
    if store.finish_once(task_id, status, **values):
        tracking.close_task_run(store.get(task_id), status)
    return store.get(task_id)


def start(store: TaskStore, runners: Runners, task_id: str, record_failure: bool = True) -> Task:
    """Submit the task's job unless it already was, or was cancelled before it started.

    ``record_failure=False`` leaves a failed submission PENDING, for a caller that will retry (an
    Airflow task with retries left); the last attempt records FAILED with the reason.
    """
    task = store.get(task_id)
    if task.job_id is not None or task.status.finished:
        return task
    if task.cancel_requested:
        return end_task(store, task_id, TaskStatus.CANCELLED, detail="cancelled before it was submitted")
    try:
        task = open_mlflow_run(store, task)
        submission = runners(task.runner_kind).submit(job_request(task, runners.settings))
    except Exception as problem:
        if record_failure:
            end_task(store, task_id, TaskStatus.FAILED, detail=f"submission failed: {problem}")
        else:
            store.update(task_id, detail=f"submission failed, will retry: {problem}")
        raise
    task = store.update(
        task_id,
        job_id=submission.job_id,
        work_dir=submission.work_dir,
        detail=f"submitted to {task.runner_location} as job {submission.job_id}",
    )
    if task.cancel_requested:
        return cancel(store, runners, task_id)
    return task


def refresh(store: TaskStore, runners: Runners, task_id: str, state: JobState | None = None) -> Task:
    """Read the job's state (or use ``state`` a trigger already read) and record it."""
    task = store.get(task_id)
    submission = submission_of(task)
    if submission is None or task.status.finished:
        return task
    runner = runners(task.runner_kind)
    state = state or runner.poll(submission)
    if not state.status.finished:
        if state.status != task.status:
            task = store.update(task_id, status=state.status, detail=state.detail)
        return task
    return finish(store, runner, task, state)


def finish(store: TaskStore, runner: Runner, task: Task, state: JobState) -> Task:
    """Keep the end of the log and the MLflow run id it names, then the outcome."""
    submission = submission_of(task)
    assert submission is not None
    try:
        tail = runner.logs(submission, runner.settings.remote_log_tail_bytes)
    except Exception as problem:
        log.warning("task %s: log not readable: %s", task.id, problem)
        tail = ""
    run_id = task.mlflow_run_id
    if task.execution_mode == "mlflow" and run_id is None:
        run_id = find_mlflow_run_id(tail)
    return end_task(store, task.id, state.status, detail=state.detail, log_tail=tail, mlflow_run_id=run_id)


def cancel(store: TaskStore, runners: Runners, task_id: str) -> Task:
    """Ask the runner to stop the job and record CANCELLED once the back end confirms it."""
    store.update(task_id, cancel_requested=True)
    task = store.get(task_id)
    submission = submission_of(task)
    if task.status.finished:
        return task
    if submission is None:
        return end_task(store, task_id, TaskStatus.CANCELLED, detail="cancelled before it was submitted")
    runner = runners(task.runner_kind)
    runner.cancel(submission)
    state = runner.poll(submission)
    if state.status.finished:
        return finish(store, runner, task, state)
    return store.update(task_id, detail=f"cancel requested; job is {state.status.value}")
