"""The ``local`` runner: the job as a process on the task service's own host, for admins only.

Off unless the operator sets ``ANCORA_REMOTE_LOCAL_ENABLED=true`` (and the service lets only admins
submit to it). A job here must not reach what the service holds, so:

* it runs as ``ANCORA_REMOTE_LOCAL_RUN_AS``, an unprivileged account, when the service runs as root;
  it never runs as root (without root the service cannot switch accounts, and the job runs as the
  service's user: docs/remote.md says what that means);
* it starts with a minimal environment: PATH (``ANCORA_REMOTE_LOCAL_JOB_PATH``), HOME (its work
  folder), LANG and the task's own variables; nothing of the service's environment;
* it works in its own folder under ``ANCORA_REMOTE_LOCAL_WORK_ROOT``, outside the state folder,
  created 0700 for its account, holding copies of the validated dataset and processor;
* its spec, log and outcome stay in the task's control folder on the service's side (0700), where
  the wrapper (``ancora.remote.local_job``) writes them; the job writes its output through the log
  descriptor only.

Each job has its own session, so a cancel stops the whole process group (``mlflow run`` starts
children).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ancora.config import Settings
from ancora.remote.jobs import InvalidJob, JobRequest
from ancora.remote.local_job import CANCELLED, LOG_NAME, OUTCOME_NAME, SPEC_NAME
from ancora.remote.runners.base import JobState, Runner, Submission, register_runner
from ancora.remote.status import TaskStatus

CONTROL_FOLDER = "run"
WORK_ROOT_MODE = 0o711
"""Others may pass through the work root to their own folder, but not list it."""

_children: dict[int, subprocess.Popen[bytes]] = {}
"""Wrappers this process started, kept so finished ones are reaped instead of lingering as zombies."""


@dataclass(frozen=True)
class JobAccount:
    name: str
    uid: int
    gid: int


def job_account(settings: Settings) -> JobAccount | None:
    """The account local jobs run as (None: the service's own), or InvalidJob saying what to set."""
    if not settings.remote_local_enabled:
        raise InvalidJob(
            "the local runner is disabled; an operator enables it with ANCORA_REMOTE_LOCAL_ENABLED=true"
        )
    name = settings.remote_local_run_as
    if os.geteuid() != 0:
        if name and name != pwd.getpwuid(os.geteuid()).pw_name:
            raise InvalidJob(
                f"local jobs cannot run as {name!r}: switching accounts needs a task service running as root"
            )
        return None
    if not name:
        raise InvalidJob(
            "the task service runs as root and local jobs never do: set ANCORA_REMOTE_LOCAL_RUN_AS to "
            "an unprivileged account"
        )
    try:
        entry = pwd.getpwnam(name)
    except KeyError as problem:
        raise InvalidJob(
            f"ANCORA_REMOTE_LOCAL_RUN_AS names {name!r}, which is not an account here"
        ) from problem
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise InvalidJob(f"ANCORA_REMOTE_LOCAL_RUN_AS={name!r} is root or in root's group; jobs never run so")
    return JobAccount(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def work_root(settings: Settings) -> Path:
    """The work root, created 0711 and owned by the service; refused if someone else could swap it."""
    root = settings.remote_local_work_root
    if root.resolve().is_relative_to(settings.state_dir.resolve()):
        raise InvalidJob("ANCORA_REMOTE_LOCAL_WORK_ROOT must lie outside the state folder")
    try:
        root.mkdir(mode=WORK_ROOT_MODE, parents=True)
    except FileExistsError:
        pass
    else:
        root.chmod(WORK_ROOT_MODE)  # mkdir's mode goes through the umask, 077 in a private service
    info = root.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise InvalidJob(
            f"{root} (ANCORA_REMOTE_LOCAL_WORK_ROOT) must be a folder of the service's own account that "
            "nobody else can write"
        )
    return root


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap(pid: int) -> None:
    """Collect the exit status of a wrapper that recorded its outcome (it exits right after), so it
    does not linger as a zombie."""
    child = _children.pop(pid, None)
    if child is not None:
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _children[pid] = child


def _give(folder: Path, account: JobAccount | None) -> None:
    if account is None:
        return
    for path in (folder, *folder.rglob("*")):
        os.chown(path, account.uid, account.gid, follow_symlinks=False)


@register_runner("local")
class LocalRunner(Runner):
    def check(self, instance_type: str, account: str) -> None:
        job_account(self.settings)

    def submit(self, job: JobRequest) -> Submission:
        account = job_account(self.settings)
        unpacked = Path(job.local_work_dir) / "work"
        control = Path(job.local_work_dir) / CONTROL_FOLDER
        shutil.rmtree(control, ignore_errors=True)
        control.mkdir(mode=0o700)
        job_dir = work_root(self.settings) / job.task_id
        shutil.rmtree(job_dir, ignore_errors=True)
        job_dir.mkdir(mode=0o700)
        for part in ("dataset", "processor"):
            shutil.copytree(unpacked / part, job_dir / part, symlinks=False)
        (job_dir / "tmp").mkdir()
        _give(job_dir, account)
        environment = {
            "PATH": self.settings.remote_local_job_path,
            "HOME": str(job_dir),
            "TMPDIR": str(job_dir / "tmp"),
            "LANG": "C.UTF-8",
            **job.environment,
            "DATASET_DIR": str(job_dir / "dataset"),
        }
        spec = {
            "argv": list(job.argv),
            "cwd": str(job_dir / "processor"),
            "environment": environment,
            "account": {"uid": account.uid, "gid": account.gid} if account else None,
            "job_dir": str(job_dir),
        }
        spec_file = control / SPEC_NAME
        with os.fdopen(os.open(spec_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            json.dump(spec, handle)
        child = subprocess.Popen(
            [sys.executable, "-m", "ancora.remote.local_job", str(control)],
            cwd=control,
            env={
                "PATH": self.settings.remote_local_job_path,
                "HOME": str(control),
                "LANG": "C.UTF-8",
            },
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _children[child.pid] = child
        return Submission(job_id=str(child.pid), work_dir=str(control))

    def poll(self, submission: Submission) -> JobState:
        outcome_file = Path(submission.work_dir) / OUTCOME_NAME
        if outcome_file.exists():
            _reap(int(submission.job_id))
            outcome = outcome_file.read_text().strip()
            if outcome == CANCELLED:
                return JobState(TaskStatus.CANCELLED, "cancelled")
            if outcome == "0":
                return JobState(TaskStatus.COMPLETED, "exit code 0")
            return JobState(TaskStatus.FAILED, f"exit code {outcome}")
        if _alive(int(submission.job_id)):
            return JobState(TaskStatus.RUNNING, f"process {submission.job_id}")
        return JobState(TaskStatus.FAILED, "the job's process ended without recording an outcome")

    def cancel(self, submission: Submission) -> None:
        pid = int(submission.job_id)
        if not _alive(pid):
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return

    def logs(self, submission: Submission, tail_bytes: int) -> str:
        log = Path(submission.work_dir) / LOG_NAME
        if not log.exists():
            return ""
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - tail_bytes))
            return handle.read().decode(errors="replace")

    def remove(self, submission: Submission) -> None:
        """Delete the job's work folder (the control folder goes with the task's folder)."""
        try:
            spec = json.loads((Path(submission.work_dir) / SPEC_NAME).read_text())
        except (OSError, ValueError):
            return
        job_dir = Path(str(spec.get("job_dir", "")))
        root = self.settings.remote_local_work_root.resolve()
        if job_dir.name and job_dir.resolve().parent == root:
            shutil.rmtree(job_dir, ignore_errors=True)
