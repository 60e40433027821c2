"""The task service's work, independent of HTTP: accept a submission, hand it to its executor,
answer status, run id, logs and cancel, and follow jobs when the service runs them itself.

Two executors (``ANCORA_REMOTE_EXECUTOR``):

* ``airflow`` (the stack's default): the task is recorded and a ``remote_task`` DAG run is triggered
  through Airflow's REST API; the DAG submits, follows (a deferrable trigger) and records the outcome,
  so engineers see and clear every job in the Airflow UI.
* ``inline``: the service submits at once and follows the job in a thread of its own. For a laptop
  without a scheduler and for the tests of the client against real Slurm.

Cancelling goes straight to the runner in both cases: it is what the user waits for.

Files: each task has a folder under the state folder (0700: uploads, unpacked copies, the local
runner's control files). Finished tasks' folders, and their work folders where the jobs ran, are
removed after ``ANCORA_REMOTE_TASK_RETENTION_HOURS``; the record and its log tail stay. What one
user's kept files weigh is bounded by ``ANCORA_REMOTE_USER_QUOTA_MB``.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from ancora.config import Settings
from ancora.remote import execution, tracking
from ancora.remote.archive import UnsafeArchive, ZipLimits, unpack_zip
from ancora.remote.jobs import EXECUTION_MODES, InvalidJob, build_argv, check_model_params, check_name
from ancora.remote.runners.base import runner_class
from ancora.remote.status import TaskStatus
from ancora.remote.store import Task, TaskStore, User, new_task_id, now
from ancora.remote.tracking import TrackingUnavailable

log = logging.getLogger(__name__)

REMOTE_TASK_DAG = "remote_task"
COPY_CHUNK = 1 << 20
FIRST_POLL_SECONDS = 0.2
FORM_OVERHEAD_BYTES = 1 << 20
"""What a submission may carry beside its two zips: the form fields and the multipart framing."""
HOUSEKEEPING_SECONDS = 3600.0
ROLES = ("dataset", "processor")


class Forbidden(Exception):
    """The user may not do this (a plain user asking for the admins-only local runner)."""


class UploadTooLarge(ValueError):
    """A file or the whole request is larger than the service accepts (HTTP 413)."""


class QuotaExceeded(ValueError):
    """The user's kept task files would pass ANCORA_REMOTE_USER_QUOTA_MB (HTTP 507)."""


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


def harden_state(settings: Settings) -> None:
    """Make the service's folder, its task folders and its SQLite database private to its user.

    New ones are created so; this closes the ones an earlier version left readable by others (0755
    folders, a 0644 database)."""
    root = settings.state_dir / "task_service"
    folders = tasks_folder(settings)
    folders.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in (root, folders, *folders.iterdir()):
        if folder.is_dir() and not folder.is_symlink() and folder.stat().st_mode & 0o077:
            folder.chmod(0o700)
    for database in root.glob("*.db*"):
        if database.is_file() and not database.is_symlink() and database.stat().st_mode & 0o077:
            database.chmod(0o600)


def upload_path(folder: Path, role: str) -> Path:
    return folder / "upload" / f"{role}.zip"


def save_upload(source: BinaryIO, target: Path, max_bytes: int) -> int:
    """Copy an upload, refusing it once it passes the size limit (the declared size is not trusted)."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    size = 0
    with target.open("xb") as sink:
        while chunk := source.read(COPY_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise UploadTooLarge(f"{target.stem}_file is larger than {max_bytes} bytes")
            sink.write(chunk)
    return size


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


class TaskService:
    def __init__(self, settings: Settings, store: TaskStore | None = None) -> None:
        self.settings = settings
        self.store = store or TaskStore.open(settings.remote_db_url)
        harden_state(settings)
        self.runners = execution.Runners(settings)
        self.locations = settings.remote_locations
        for kind in set(self.locations.values()):
            runner_class(kind)
        self._followers: dict[str, threading.Thread] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._housekeeper: threading.Thread | None = None
        if "local" in self.locations.values():
            try:
                self.runners("local").check("", "")
            except InvalidJob as problem:
                log.warning("local runner locations are configured but refuse jobs: %s", problem)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.settings.remote_max_upload_mb * 1024 * 1024)

    @property
    def max_request_bytes(self) -> int:
        """The largest submission body: two zips at their limit and the form around them."""
        return 2 * self.max_upload_bytes + FORM_OVERHEAD_BYTES

    @property
    def quota_bytes(self) -> int:
        return int(self.settings.remote_user_quota_mb * 1024 * 1024)

    @property
    def limits(self) -> ZipLimits:
        return ZipLimits(
            max_unpacked_bytes=int(self.settings.remote_max_unpacked_mb * 1024 * 1024),
            max_ratio=self.settings.remote_max_zip_ratio,
            max_entries=self.settings.remote_max_zip_entries,
        )

    def admit(self, owner: User, content_length: int | None) -> None:
        """Refuse a submission by its declared size alone, before a byte of its body is read."""
        if content_length is None:
            return
        if content_length > self.max_request_bytes:
            raise UploadTooLarge(
                f"the request declares {content_length} bytes; at most {self.max_request_bytes} are accepted "
                f"(two zips of ANCORA_REMOTE_MAX_UPLOAD_MB={self.settings.remote_max_upload_mb:g} MB)"
            )
        self._check_quota(owner, content_length)

    def _check_quota(self, owner: User, more_bytes: int) -> None:
        used = self.store.disk_usage(owner.username)
        if used + more_bytes > self.quota_bytes:
            raise QuotaExceeded(
                f"{owner.username} keeps {used} bytes of task files; {more_bytes} more would pass the quota "
                f"of {self.quota_bytes} bytes (finished tasks' files are removed after "
                f"{self.settings.remote_task_retention_hours:g} hours)"
            )

    def check(self, owner: User, fields: SubmissionFields) -> tuple[str, dict[str, Any]]:
        """The runner kind and the checked parameters, or InvalidJob/Forbidden: nothing is kept before."""
        kind = self.locations.get(fields.runner_location)
        if kind is None:
            raise InvalidJob(
                f"runner_location {fields.runner_location!r} is unknown; known: {sorted(self.locations)}"
            )
        if kind == "local" and not owner.is_admin:
            raise Forbidden(
                f"runner_location {fields.runner_location!r} runs jobs on the task service's host; "
                "only admins may use it"
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
        return self.hand_on(self.accept(owner, fields, dataset, processor))

    def hand_on(self, task: Task) -> Task:
        """Give an accepted task its MLflow run, then start it (inline) or trigger its DAG run."""
        try:
            task = execution.open_mlflow_run(self.store, task)
        except TrackingUnavailable as problem:
            execution.end_task(self.store, task.id, TaskStatus.FAILED, detail=f"no MLflow run: {problem}")
            raise ExecutorUnavailable(f"the task's MLflow run could not be created: {problem}") from problem
        if self.settings.remote_executor == "inline":
            return self._start_inline(task)
        return self._trigger_airflow(task)

    def new_task_folder(self) -> tuple[str, Path]:
        """A fresh task id and its folder (0700), for uploads streamed straight into it."""
        task_id = new_task_id()
        folder = tasks_folder(self.settings) / task_id
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
        return task_id, folder

    def accept(
        self,
        owner: User,
        fields: SubmissionFields,
        dataset: tuple[str, BinaryIO],
        processor: tuple[str, BinaryIO],
    ) -> Task:
        """Keep the two zips (bounded), then accept them like an upload streamed into the folder."""
        task_id, folder = self.new_task_folder()
        try:
            for role, (_, stream) in zip(ROLES, (dataset, processor), strict=True):
                save_upload(stream, upload_path(folder, role), self.max_upload_bytes)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return self.accept_folder(owner, fields, task_id, folder, dataset_filename=dataset[0])

    def accept_folder(
        self, owner: User, fields: SubmissionFields, task_id: str, folder: Path, dataset_filename: str
    ) -> Task:
        """Check the fields and names, unpack the kept zips, check the quota, record the task PENDING.

        Anything refused removes the task's folder: nothing of a refused submission is kept."""
        try:
            kind, params = self.check(owner, fields)
            dataset_name = fields.dataset_name or check_name(
                "dataset_name", Path(dataset_filename).stem or "dataset"
            )
            for role in ROLES:
                upload = upload_path(folder, role)
                if not upload.is_file():
                    raise InvalidJob(f"{role}_file is missing")
                try:
                    unpack_zip(upload, folder / "work" / role, self.limits)
                except UnsafeArchive as problem:
                    raise UnsafeArchive(f"{role}_file: {problem}") from problem
            disk_bytes = folder_bytes(folder)
            self._check_quota(owner, disk_bytes)
            return self.store.create_task(
                id=task_id,
                owner=owner.username,
                dataset_name=dataset_name,
                runner_location=fields.runner_location,
                runner_kind=kind,
                execution_mode=fields.execution_mode,
                experiment_name=fields.experiment_name,
                execution_command=fields.execution_command,
                tracking_uri=fields.tracking_uri or self.settings.mlflow_tracking_uri,
                instance_type=fields.instance_type,
                account=fields.account,
                model_params=params,
                local_dir=str(folder),
                disk_bytes=disk_bytes,
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

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
            execution.end_task(self.store, task.id, TaskStatus.FAILED, detail=f"Airflow: {problem}")
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
        """Start the housekeeping (MLflow client warm-up, hourly retention sweep); pick up, after a
        restart, the jobs this service was following."""
        if self._housekeeper is None:
            self._housekeeper = threading.Thread(target=self._housekeeping, name="task-housekeeping")
            self._housekeeper.daemon = True
            self._housekeeper.start()
        if self.settings.remote_executor != "inline":
            return
        for task in self.store.unfinished():
            if task.job_id is not None:
                self.follow(task.id)

    def _housekeeping(self) -> None:
        tracking.warm_up()
        while not self._stopping.is_set():
            try:
                self.purge_expired()
            except Exception as problem:
                log.warning("removing expired task files failed: %s", problem)
            self._stopping.wait(HOUSEKEEPING_SECONDS)

    def purge_expired(self, at: datetime | None = None) -> list[str]:
        """Remove the files of tasks finished longer ago than the retention; the ids purged.

        The job's folder where it ran goes first (the cluster's, or the local job folder); if the
        runner cannot remove it (the login node is down), the task is tried again next time."""
        cutoff = (at or now()) - timedelta(hours=self.settings.remote_task_retention_hours)
        purged = []
        for task in self.store.expired(finished_before=cutoff):
            submission = execution.submission_of(task)
            if submission is not None:
                try:
                    self.runners(task.runner_kind).remove(submission)
                except Exception as problem:
                    log.warning(
                        "task %s: work folder %s not removed yet: %s", task.id, task.work_dir, problem
                    )
                    continue
            shutil.rmtree(task.local_dir, ignore_errors=True)
            self.store.update(task.id, purged_at=now(), disk_bytes=0)
            purged.append(task.id)
        if purged:
            log.info("removed the files of %d finished tasks", len(purged))
        return purged

    def close(self) -> None:
        self._stopping.set()
        for thread in list(self._followers.values()):
            thread.join(timeout=5)
        if self._housekeeper is not None:
            self._housekeeper.join(timeout=5)
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
