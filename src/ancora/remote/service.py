"""The task service's work, independent of HTTP: accept a submission, hand it to its executor,
answer status, run id, logs and cancel, and follow jobs when the service runs them itself.

Two executors (``ANCORA_REMOTE_EXECUTOR``):

* ``airflow`` (the stack's default): the task is recorded and a ``remote_task`` DAG run is triggered
  through Airflow's REST API; the DAG submits, follows (a deferrable trigger) and records the outcome,
  so engineers see and clear every job in the Airflow UI.
* ``inline``: the service submits at once and follows the job in a thread of its own. For a laptop
  without a scheduler and for the tests of the client against real Slurm.

Cancelling goes straight to the runner in both cases: it is what the user waits for.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ancora.config import Settings
from ancora.remote import execution
from ancora.remote.archive import UnsafeArchive, ZipLimits, unpack_zip
from ancora.remote.jobs import EXECUTION_MODES, InvalidJob, build_argv, check_model_params, check_name
from ancora.remote.runners.base import locations, runner_class
from ancora.remote.status import TaskStatus
from ancora.remote.store import Task, TaskStore, User, new_task_id

log = logging.getLogger(__name__)

REMOTE_TASK_DAG = "remote_task"
COPY_CHUNK = 1 << 20
FIRST_POLL_SECONDS = 0.2


class Forbidden(Exception):
    pass


class ExecutorUnavailable(RuntimeError):
    """The task was recorded but could not be handed on; it is marked FAILED with the reason."""


@dataclass(frozen=True)
class SubmissionFields:
    """The Submitter's fields as they arrive in the form."""

    dataset_name: str | None
    runner_location: str
    execution_mode: str
    experiment_name: str
    execution_command: str
    tracking_uri: str | None
    instance_type: str
    account: str
    model_params: dict[str, Any]


def tasks_folder(settings: Settings) -> Path:
    return settings.state_dir / "task_service" / "tasks"


def save_upload(source: BinaryIO, target: Path, max_bytes: int) -> int:
    """Copy an upload, refusing it once it passes the size limit (the declared size is not trusted)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with target.open("xb") as sink:
        while chunk := source.read(COPY_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise UnsafeArchive(f"{target.name} is larger than {max_bytes} bytes")
            sink.write(chunk)
    return size


class TaskService:
    def __init__(self, settings: Settings, store: TaskStore | None = None) -> None:
        self.settings = settings
        self.store = store or TaskStore.open(settings.resolved_remote_db_url)
        self.runners = execution.Runners(settings)
        self.locations = locations(settings)
        for kind in set(self.locations.values()):
            runner_class(kind)
        self._followers: dict[str, threading.Thread] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    @property
    def limits(self) -> ZipLimits:
        return ZipLimits(
            max_unpacked_bytes=int(self.settings.remote_max_unpacked_mb * 1024 * 1024),
            max_ratio=self.settings.remote_max_zip_ratio,
            max_entries=self.settings.remote_max_zip_entries,
        )

    def check(self, fields: SubmissionFields) -> tuple[str, dict[str, Any]]:
        """The runner kind and the checked parameters, or InvalidJob: nothing is stored before this."""
        kind = self.locations.get(fields.runner_location)
        if kind is None:
            raise InvalidJob(
                f"runner_location {fields.runner_location!r} is unknown; known: {sorted(self.locations)}"
            )
        if fields.execution_mode not in EXECUTION_MODES:
            raise InvalidJob(f"execution_mode must be one of {list(EXECUTION_MODES)}")
        check_name("experiment_name", fields.experiment_name)
        check_name("account", fields.account)
        check_name("instance_type", fields.instance_type)
        if fields.dataset_name is not None:
            check_name("dataset_name", fields.dataset_name)
        params = check_model_params(fields.model_params)
        build_argv(fields.execution_command, params)
        self.runners(kind).check(fields.instance_type, fields.account)
        return kind, params

    def submit(
        self,
        owner: User,
        fields: SubmissionFields,
        dataset: tuple[str, BinaryIO],
        processor: tuple[str, BinaryIO],
    ) -> Task:
        """Accept the task, then hand it to the executor."""
        task = self.accept(owner, fields, dataset, processor)
        if self.settings.remote_executor == "inline":
            return self._start_inline(task)
        return self._trigger_airflow(task)

    def accept(
        self,
        owner: User,
        fields: SubmissionFields,
        dataset: tuple[str, BinaryIO],
        processor: tuple[str, BinaryIO],
    ) -> Task:
        """Check the fields, keep and unpack the zips, record the task as PENDING."""
        kind, params = self.check(fields)
        task_id = new_task_id()
        folder = tasks_folder(self.settings) / task_id
        max_bytes = int(self.settings.remote_max_upload_mb * 1024 * 1024)
        try:
            for role, (_, stream) in (("dataset", dataset), ("processor", processor)):
                upload = folder / "upload" / f"{role}.zip"
                save_upload(stream, upload, max_bytes)
                try:
                    unpack_zip(upload, folder / "work" / role, self.limits)
                except UnsafeArchive as problem:
                    raise UnsafeArchive(f"{role}_file: {problem}") from problem
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        dataset_name = fields.dataset_name or check_name("dataset_name", Path(dataset[0]).stem or "dataset")
        return self.store.create_task(
            id=task_id,
            owner=owner.username,
            dataset_name=dataset_name,
            runner_location=fields.runner_location,
            runner_kind=kind,
            execution_mode=fields.execution_mode,
            experiment_name=fields.experiment_name,
            execution_command=fields.execution_command,
            tracking_uri=fields.tracking_uri or self.settings.resolved_mlflow_tracking_uri,
            instance_type=fields.instance_type,
            account=fields.account,
            model_params=params,
            local_dir=str(folder),
        )

    def _start_inline(self, task: Task) -> Task:
        try:
            task = execution.start(self.store, self.runners, task.id)
        except Exception as problem:
            log.warning("task %s could not be submitted: %s", task.id, problem)
            raise ExecutorUnavailable(f"submission to {task.runner_location} failed: {problem}") from problem
        self.follow(task.id)
        return task

    def _trigger_airflow(self, task: Task) -> Task:
        from ancora.clients.airflow import AirflowClient, AirflowError

        run_id = f"remote__{task.id}"
        try:
            with AirflowClient.from_settings(self.settings) as airflow:
                airflow.trigger_dag_run(
                    REMOTE_TASK_DAG,
                    conf={"task_id": task.id},
                    run_id=run_id,
                    note=f"{task.owner}: {task.experiment_name} on {task.runner_location}",
                )
        except AirflowError as problem:
            self.store.finish_once(task.id, TaskStatus.FAILED, detail=f"Airflow: {problem}")
            raise ExecutorUnavailable(f"the task could not be handed to Airflow: {problem}") from problem
        return self.store.update(task.id, airflow_run_id=run_id, detail="queued in Airflow (remote_task)")

    def visible(self, user: User, task_id: str) -> Task:
        """The task if the user owns it or is an admin; unknown and foreign tasks look alike (404)."""
        task = self.store.find(task_id)
        if task is None or not (user.is_admin or task.owner == user.username):
            raise KeyError(task_id)
        return task

    def cancel(self, user: User, task_id: str) -> Task:
        self.visible(user, task_id)
        return execution.cancel(self.store, self.runners, task_id)

    def logs(self, user: User, task_id: str) -> str:
        task = self.visible(user, task_id)
        submission = execution.submission_of(task)
        if task.log_tail is not None or submission is None:
            return task.log_tail or ""
        return self.runners(task.runner_kind).logs(submission, self.settings.remote_log_tail_bytes)

    def list_for(self, user: User) -> list[Task]:
        return self.store.list_tasks(owner=None if user.is_admin else user.username)

    def follow(self, task_id: str) -> None:
        """Poll the task's job in a thread until it ends (inline executor only)."""
        with self._lock:
            if task_id in self._followers and self._followers[task_id].is_alive():
                return
            thread = threading.Thread(target=self._follow, args=(task_id,), name=f"follow-{task_id[:8]}")
            thread.daemon = True
            self._followers[task_id] = thread
            thread.start()

    def _follow(self, task_id: str) -> None:
        """Poll quickly at first (a job often starts within a second), then every poll interval."""
        pause = min(FIRST_POLL_SECONDS, self.settings.remote_poll_seconds)
        while not self._stopping.is_set():
            try:
                task = execution.refresh(self.store, self.runners, task_id)
            except Exception as problem:
                log.warning("task %s: status not readable yet: %s", task_id, problem)
            else:
                if task.status.finished:
                    return
            self._stopping.wait(pause)
            pause = min(pause * 2, self.settings.remote_poll_seconds)

    def resume(self) -> None:
        """Pick up, after a restart, the jobs this service was following."""
        if self.settings.remote_executor != "inline":
            return
        for task in self.store.unfinished():
            if task.job_id is not None:
                self.follow(task.id)

    def close(self) -> None:
        self._stopping.set()
        for thread in list(self._followers.values()):
            thread.join(timeout=5)
        self.runners.close()


def parse_params(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as problem:
        raise InvalidJob(f"model_params is not JSON: {problem}") from problem
    if not isinstance(value, dict):
        raise InvalidJob("model_params must be a JSON object")
    return value
