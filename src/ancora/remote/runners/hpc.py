"""The ``hpc`` runner: a Slurm cluster reached over SSH with paramiko.

Each task gets a folder under ``ANCORA_HPC_WORK_ROOT`` on the cluster; the validated zips are
copied there over SFTP and unpacked by the login node's ``python3 -m zipfile``, a batch script is
written next to them and handed to ``sbatch --parsable``. Following is ``squeue``/``sacct``,
cancelling ``scancel``, logs are the tail of the job's output file.

paramiko directly, not Airflow's SSH hook: the task service cancels and follows jobs itself and must
not need Airflow installed for that. The host key must already be in ``ANCORA_HPC_KNOWN_HOSTS``: an
unknown or changed key refuses the connection (paramiko's RejectPolicy, no auto-add), so a job's
data never goes to an impostor. Only that file is trusted, not the system's or the user's other
known_hosts files.
"""

from __future__ import annotations

import logging
import select
import shlex
import threading
import time
from pathlib import Path, PurePosixPath

import paramiko

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

KEEPALIVE_SECONDS = 30
UNPACK_TIMEOUT_SECONDS = 600.0
"""Unpacking a 200 MB upload on a busy login node can take minutes; quick commands get less."""
READ_CHUNK = 1 << 16


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


def connect(settings: Settings) -> paramiko.SSHClient:
    """An SSH connection to the login node that trusts only the key in ANCORA_HPC_KNOWN_HOSTS."""
    known_host_key(settings.hpc_known_hosts, settings.hpc_host, settings.hpc_port)
    client = paramiko.SSHClient()
    client.load_host_keys(str(settings.hpc_known_hosts.expanduser()))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    timeout = settings.hpc_ssh_timeout_seconds
    try:
        client.connect(
            settings.hpc_host,
            port=settings.hpc_port,
            username=settings.hpc_username,
            key_filename=str(settings.hpc_key_file.expanduser()) if settings.hpc_key_file else None,
            look_for_keys=settings.hpc_key_file is None,
            allow_agent=settings.hpc_key_file is None,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
    except BaseException:
        client.close()
        raise
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(KEEPALIVE_SECONDS)
    return client


def run_command(client: paramiko.SSHClient, command: str, timeout: float) -> tuple[int, bytes, bytes]:
    """Run one command; its exit status, stdout and stderr, read together so neither stream blocks."""
    transport = client.get_transport()
    if transport is None:
        raise RemoteCommandFailed("the SSH connection is closed")
    channel = transport.open_session(timeout=timeout)
    try:
        channel.exec_command(command)
        stdout, stderr = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        while True:
            while channel.recv_ready():
                stdout += channel.recv(READ_CHUNK)
            while channel.recv_stderr_ready():
                stderr += channel.recv_stderr(READ_CHUNK)
            if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                break
            if time.monotonic() > deadline:
                raise RemoteCommandFailed(f"{command.split()[0]} did not finish within {timeout:g} s")
            select.select([channel], [], [], 0.2)
        return channel.recv_exit_status(), bytes(stdout), bytes(stderr)
    finally:
        channel.close()


@register_runner("hpc")
class HpcRunner(Runner):
    """One SSH connection per runner, reused for every command (a handshake costs about 100 ms)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()

    def plan(self, instance_type: str, account: str) -> ClusterPlan:
        return plan_for(instance_type, account, self.settings.hpc_instance_types, self.settings.hpc_accounts)

    def check(self, instance_type: str, account: str) -> None:
        self.plan(instance_type, account)

    def _connection(self) -> paramiko.SSHClient:
        """The open connection, or a new one if there is none or it dropped (call with the lock)."""
        client = self._client
        transport = client.get_transport() if client is not None else None
        if client is None or transport is None or not transport.is_active():
            if client is not None:
                client.close()
            self._client = None
            client = self._client = connect(self.settings)
        return client

    def run(self, command: str, check: bool = True, timeout: float | None = None) -> str:
        """Run one command on the login node; stdout as text."""
        limit = timeout or self.settings.hpc_ssh_timeout_seconds * 3
        with self._lock:
            status, stdout, stderr = run_command(self._connection(), command, limit)
        if check and status != 0:
            raise RemoteCommandFailed(
                f"{command.split()[0]} on {self.settings.hpc_host} exited with {status}: "
                f"{stderr.decode(errors='replace').strip()[-2000:]}"
            )
        return stdout.decode(errors="replace")

    def submit(self, job: JobRequest) -> Submission:
        plan = self.plan(job.instance_type, job.account)
        folder = shlex.quote(f"{self.settings.hpc_work_root}/{job.task_id}")
        where = self.run(f"umask 077 && mkdir -p {folder} && chmod 700 {folder} && cd {folder} && pwd")
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
            sftp = self._connection().open_sftp()
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
            "sbatch --parsable job.sbatch",
            timeout=UNPACK_TIMEOUT_SECONDS,
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

    def remove(self, submission: Submission) -> None:
        """Delete the task's folder on the cluster: only a folder named by a task id, never more."""
        folder = PurePosixPath(submission.work_dir)
        if len(folder.name) != 32 or not all(char in "0123456789abcdef" for char in folder.name):
            raise RemoteCommandFailed(f"{submission.work_dir!r} is not a task folder; not removed")
        self.run(f"rm -rf -- {shlex.quote(submission.work_dir)}")

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client = None
