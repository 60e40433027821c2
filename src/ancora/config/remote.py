"""The task service and its runners: remote jobs on Slurm over SSH, on this host, or on SageMaker."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints
from pydantic_settings import NoDecode

from ancora.config.base import derived, json_text
from ancora.config.sagemaker import SagemakerSettings
from ancora.config.stack import AirflowSettings
from ancora.config.training import RegistrySettings

SBATCH_VALUE = re.compile(r"^[A-Za-z0-9_.:/@+-]*$")
"""What an ``#SBATCH`` value may hold: sbatch reads those lines itself, so quoting means nothing there."""
TIME_LIMIT = re.compile(r"^(\d+-)?\d{1,3}(:\d{2}){0,2}$")

RunnerKind = Literal["hpc", "local", "sagemaker"]
SlurmAccount = Annotated[str, StringConstraints(pattern=SBATCH_VALUE.pattern)]


class InstanceType(BaseModel):
    """One ``instance_type`` of the client on the cluster."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partition: str = Field(pattern=SBATCH_VALUE.pattern)
    gpus: int = Field(default=0, ge=0)
    time_limit: str = Field(default="01:00:00", pattern=TIME_LIMIT.pattern)
    cpus: int = Field(default=1, ge=1)
    mem: str | None = Field(default=None, pattern=SBATCH_VALUE.pattern)


class RemoteSettings(SagemakerSettings, AirflowSettings, RegistrySettings):
    """What the task service (`ancora task-service`) and its runners read: the `tasks` role (a location
    may be SageMaker)."""

    task_service_username: str | None = Field(
        default=None, description="User the client library logs in as (Submitter, TaskHandler)."
    )
    task_service_password: SecretStr | None = Field(
        default=None, description="Password of task_service_username for the client library."
    )
    remote_db_url: str = derived(
        "SQLite under state_dir",
        lambda data: f"sqlite:///{data['state_dir'] / 'task_service' / 'tasks.db'}",
        "SQLAlchemy URL of the task service's tasks and users; default: SQLite under state_dir.",
    )
    remote_executor: Literal["airflow", "inline"] = Field(
        default="airflow",
        description="Who runs submitted jobs: a remote_task Airflow DAG run, or the task service itself "
        "(inline: a laptop or tests without a scheduler).",
    )
    remote_locations: Annotated[dict[str, RunnerKind], NoDecode, json_text(empty={})] = Field(
        default={"atena02": "hpc"},
        description="JSON map of runner_location names to runner kinds (hpc, local, sagemaker); a local "
        "location also needs remote_local_enabled.",
    )
    remote_login_minutes: int = Field(
        default=60, ge=1, description="Lifetime of a task service login token (signed JWT)."
    )
    remote_jwt_secret: SecretStr | None = Field(
        default=None,
        description="Key signing task service tokens; default: generated once into state_dir/task_service.",
    )
    remote_max_upload_mb: float = Field(
        default=200, gt=0, description="Largest zip file the service accepts."
    )
    remote_max_unpacked_mb: float = Field(
        default=2048, gt=0, description="Largest total unpacked size of one zip (zip bomb guard)."
    )
    remote_max_zip_ratio: float = Field(
        default=200, gt=1, description="Highest unpacked/packed size ratio of a zip entry (zip bomb guard)."
    )
    remote_max_zip_entries: int = Field(default=20_000, ge=1, description="Most entries one zip may hold.")
    remote_poll_seconds: float = Field(
        default=1.0, gt=0, description="Seconds between status polls of a running remote job."
    )
    remote_log_tail_bytes: int = Field(
        default=65_536, ge=1024, description="How much of the end of a job's log is fetched and kept."
    )
    hpc_host: str = Field(
        default="atena02", description="Slurm login node reached over SSH by the hpc runner."
    )
    hpc_port: int = Field(default=22, description="SSH port of the Slurm login node.")
    hpc_username: str | None = Field(
        default=None, description="SSH user on the login node; default: the local user."
    )
    hpc_key_file: Path | None = Field(default=None, description="Private key for the login node.")
    hpc_known_hosts: Path = Field(
        default=Path("~/.ssh/known_hosts"),
        description="known_hosts file that must hold the login node's host key (unknown hosts are refused).",
    )
    hpc_work_root: str = Field(
        default="ancora-tasks",
        description="Folder on the cluster holding one work folder per task (relative: under the SSH home).",
    )
    hpc_job_setup: str = Field(
        default="",
        description="Shell lines the batch script runs before the command (module load, venv activation); "
        "set by the operator, never by submitters.",
    )
    hpc_instance_types: Annotated[dict[str, InstanceType], NoDecode, json_text(empty={})] = Field(
        default={
            "gpu": {"partition": "gpu", "gpus": 1, "time_limit": "04:00:00"},
            "cpu": {"partition": "cpu", "gpus": 0, "time_limit": "02:00:00"},
        },
        validate_default=True,
        description="JSON map of the client's instance_type to Slurm partition, GPUs and time limit "
        "(also cpus, mem).",
    )
    hpc_accounts: Annotated[dict[str, SlurmAccount], NoDecode, json_text(empty={})] = Field(
        default={"default_account": ""},
        description="JSON map of the client's account to a Slurm account (empty: none); others are refused.",
    )
    hpc_ssh_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of the SSH connection and of each command on the login node."
    )

    # --- Task service: jobs, MLflow runs, tokens, retention (src/ancora/remote, task_service/) ---
    remote_mlflow_env_manager: Literal["local", "virtualenv", "uv", "conda"] = Field(
        default="local",
        description="--env-manager of `mlflow run` in mlflow-mode jobs that do not name one; local: the "
        "environment the operator provides (hpc_job_setup), no download on the compute node.",
    )
    remote_local_enabled: bool = Field(
        default=False,
        description="Allow the local runner (jobs on the task service's host, admins only); off by default.",
    )
    remote_local_run_as: str | None = Field(
        default=None,
        description="Unprivileged OS account local jobs run as; required when the service runs as root "
        "(jobs never run as root).",
    )
    remote_local_work_root: Path = derived(
        "the system temporary folder's ancora-jobs",
        lambda: Path(tempfile.gettempdir()) / "ancora-jobs",
        "Folder of the local jobs' work folders, outside state_dir; default: the system "
        "temporary folder's ancora-jobs.",
    )
    remote_local_job_path: str = derived(
        "this Python's bin folder, /usr/local/bin, /usr/bin, /bin",
        lambda: os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "PATH of local jobs; default: this Python's bin folder, /usr/local/bin, /usr/bin, /bin.",
    )
    remote_task_retention_hours: float = Field(
        default=168.0,
        ge=0,
        description="Hours a finished task's files (uploads, work folders here and on the cluster) are "
        "kept; the task's record and log tail stay.",
    )
    remote_user_quota_mb: float = Field(
        default=10_240, gt=0, description="Disk one user's kept task files may use (uploads and unpacked)."
    )
    remote_login_max_failures: int = Field(
        default=5, ge=1, description="Failed task service logins per username within the window before 429."
    )
    remote_login_max_failures_per_address: int = Field(
        default=20, ge=1, description="Failed task service logins per client address within the window."
    )
    remote_login_window_seconds: float = Field(
        default=300.0, gt=0, description="Window of the failed-login limits; also the longest Retry-After."
    )
    task_service_tls_cert_file: Path | None = Field(
        default=None, description="Certificate (PEM) the task service serves HTTPS with; unset: plain HTTP."
    )
    task_service_tls_key_file: Path | None = Field(
        default=None, description="Private key (PEM) of task_service_tls_cert_file."
    )
