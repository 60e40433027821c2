"""The ``local`` runner: the job as a process on this machine, for a laptop without a cluster.

The job runs in the service's own task folder, where the validated zips were already unpacked, in
its own session so a cancel stops the whole process group (``mlflow run`` starts children).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from ancora.remote.jobs import JobRequest
from ancora.remote.local_job import CANCELLED, LOG_NAME, OUTCOME_NAME, SPEC_NAME
from ancora.remote.runners.base import JobState, Runner, Submission, register_runner
from ancora.remote.status import TaskStatus

_children: dict[int, subprocess.Popen[bytes]] = {}
"""Wrappers this process started, kept so finished ones are reaped instead of lingering as zombies."""


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


@register_runner("local")
class LocalRunner(Runner):
    def submit(self, job: JobRequest) -> Submission:
        work_dir = Path(job.local_work_dir) / "work"
        spec = {
            "argv": list(job.argv),
            "cwd": str(work_dir / "processor"),
            "environment": dict(job.environment),
        }
        (work_dir / SPEC_NAME).write_text(json.dumps(spec))
        bin_dir = str(Path(sys.executable).parent)
        environment = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        child = subprocess.Popen(
            [sys.executable, "-m", "ancora.remote.local_job", str(work_dir)],
            cwd=work_dir,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _children[child.pid] = child
        return Submission(job_id=str(child.pid), work_dir=str(work_dir))

    def poll(self, submission: Submission) -> JobState:
        outcome_file = Path(submission.work_dir) / OUTCOME_NAME
        if outcome_file.exists():
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
