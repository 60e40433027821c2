"""The ``hpc`` runner: a Slurm cluster reached over SSH with the Airflow SSH provider's hook.

Each task gets a folder under ``ANCORA_HPC_WORK_ROOT`` on the cluster; the validated zips are
copied there over SFTP and unpacked by the login node's ``python3 -m zipfile``, a batch script is
written next to them and handed to ``sbatch --parsable``. Following is ``squeue``/``sacct``,
cancelling ``scancel``, logs are the tail of the job's output file.

The host key must already be in ``ANCORA_HPC_KNOWN_HOSTS``: an unknown or changed key refuses the
connection (paramiko's RejectPolicy), so a job's data never goes to an impostor.
"""

from __future__ import annotations

import logging
import shlex
import threading
from pathlib import Path

import paramiko
from airflow.providers.ssh.hooks.ssh import SSHHook

from ancora.config import Settings
from ancora.remote.jobs import JobRequest
from ancora.remote.runners.base import JobState, Runner, Submission, register_runner
from ancora.remote.slurm import (
    LOG_NAME,
    ClusterPlan,
    check_job_id,
    parse_sbatch_output,
    plan_for,
    render_batch_script,
    state_command,
)
from ancora.remote.status import TaskStatus, from_slurm

log = logging.getLogger(__name__)


class RemoteCommandFailed(RuntimeError):
    pass


def known_host_key(known_hosts: Path, host: str, port: int) -> paramiko.PKey:
    """The login node's key from the configured known_hosts file, or an error that says what to add."""
    path = known_hosts.expanduser()
    if not path.exists():
        raise RemoteCommandFailed(f"known_hosts file {path} does not exist (ANCORA_HPC_KNOWN_HOSTS)")
    entries = paramiko.HostKeys(str(path))
    name = host if port == 22 else f"[{host}]:{port}"
    keys = entries.lookup(name)
    if not keys:
        raise RemoteCommandFailed(f"no host key for {name} in {path}; add it (ssh-keyscan) after checking it")
    return keys[keys.keys()[0]]


def ssh_hook(settings: Settings) -> SSHHook:
    """An SSHHook for the configured login node that only trusts the known_hosts key."""
    timeout = settings.hpc_ssh_timeout_seconds
    hook = SSHHook(
        remote_host=settings.hpc_host,
        port=settings.hpc_port,
        username=settings.hpc_username,
        key_file=str(settings.hpc_key_file) if settings.hpc_key_file else None,
        conn_timeout=int(max(1, timeout)),
        cmd_timeout=timeout * 3,
        conn_retry_attempts=1,
        no_host_key_check=False,
    )
    # The hook fills host_key from a connection's extra; with settings instead, it is set here.
    hook.host_key = known_host_key(settings.hpc_known_hosts, settings.hpc_host, settings.hpc_port)  # type: ignore[assignment]
    hook.look_for_keys = settings.hpc_key_file is None
    return hook


@register_runner("hpc")
class HpcRunner(Runner):
    """One SSH connection per runner, reused for every command (a handshake costs about 100 ms)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._hook: SSHHook | None = None
        self._lock = threading.Lock()

    def plan(self, instance_type: str, account: str) -> ClusterPlan:
        return plan_for(instance_type, account, self.settings.hpc_instance_types, self.settings.hpc_accounts)

    def check(self, instance_type: str, account: str) -> None:
        self.plan(instance_type, account)

    def run(self, command: str, check: bool = True) -> str:
        """Run one command on the login node; stdout as text."""
        with self._lock:
            if self._hook is None:
                self._hook = ssh_hook(self.settings)
            hook = self._hook
            client = hook.get_conn()
            status, stdout, stderr = hook.exec_ssh_client_command(
                client, command, get_pty=False, environment=None
            )
        if check and status != 0:
            raise RemoteCommandFailed(
                f"{command.split()[0]} on {self.settings.hpc_host} exited with {status}: "
                f"{stderr.decode(errors='replace').strip()[-2000:]}"
            )
        return str(stdout.decode(errors="replace"))

    def submit(self, job: JobRequest) -> Submission:
        plan = self.plan(job.instance_type, job.account)
        folder = shlex.quote(f"{self.settings.hpc_work_root}/{job.task_id}")
        where = self.run(f"mkdir -p {folder} && cd {folder} && pwd")
        work_dir = where.strip().splitlines()[-1]
        script = render_batch_script(
            task_id=job.task_id,
            work_dir=work_dir,
            argv=job.argv,
            environment={**job.environment, "DATASET_DIR": f"{work_dir}/dataset"},
            plan=plan,
            setup=self.settings.hpc_job_setup,
        )
        with self._lock:
            assert self._hook is not None
            sftp = self._hook.get_conn().open_sftp()
            try:
                sftp.put(job.dataset_zip, f"{work_dir}/dataset.zip")
                sftp.put(job.processor_zip, f"{work_dir}/processor.zip")
                with sftp.open(f"{work_dir}/job.sbatch", "w") as handle:
                    handle.write(script)
            finally:
                sftp.close()
        quoted = shlex.quote(work_dir)
        output = self.run(
            f"cd {quoted} && rm -rf dataset processor && "
            "python3 -m zipfile -e dataset.zip dataset && python3 -m zipfile -e processor.zip processor && "
            "sbatch --parsable job.sbatch"
        )
        job_id = parse_sbatch_output(output)
        log.info("task %s is Slurm job %s on %s", job.task_id, job_id, self.settings.hpc_host)
        return Submission(job_id=job_id, work_dir=work_dir)

    def poll(self, submission: Submission) -> JobState:
        state = self.run(state_command(submission.job_id), check=False).strip()
        if not state:
            return JobState(TaskStatus.FAILED, f"Slurm no longer knows job {submission.job_id}")
        return JobState(from_slurm(state), f"Slurm state {state}")

    def cancel(self, submission: Submission) -> None:
        self.run(f"scancel {check_job_id(submission.job_id)}")

    def logs(self, submission: Submission, tail_bytes: int) -> str:
        path = shlex.quote(f"{submission.work_dir}/{LOG_NAME}")
        return self.run(f"tail -c {int(tail_bytes)} {path} 2>/dev/null || true", check=False)

    def close(self) -> None:
        with self._lock:
            if self._hook is not None and self._hook.client is not None:
                self._hook.client.close()
            self._hook = None
