"""Remote execution against a real single-node Slurm cluster behind a real sshd.

A long job is cancelled through the client and Slurm confirms it; a failing command ends FAILED with
its log; a job sees a minimal environment, none of the service's secrets; the service keeps its state
in MariaDB and follows jobs itself (inline); the remote_task DAG is run once with dag.test(), and the
retention then removes the task's files here and on the cluster. The seed document's usage examples
run against the same cluster in test_seed_000_examples.py.
"""

from __future__ import annotations

import ast
import os
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import paramiko
import pytest

from ancora.config import Settings, get_settings
from tests.conftest import SHARED_DATA
from tests.support.databases import throwaway_mariadb
from tests.support.repo import REPO_ROOT
from tests.support.slurm import SlurmCluster
from tests.support.task_service import add_user, running_task_service

pytestmark = pytest.mark.integration

EXAMPLES = REPO_ROOT / "examples"
PASSWORD = "slurm-" + secrets.token_hex(8)
ADMIN_TOKEN = "admin-" + secrets.token_hex(16)
FINISHED = {"COMPLETED", "FAILED", "CANCELLED"}


@pytest.fixture(scope="module")
def cluster(slurm_cluster: SlurmCluster) -> SlurmCluster:
    return slurm_cluster


@pytest.fixture(scope="module")
def tracking_uri(sqlite_mlflow_server: str) -> str:
    return sqlite_mlflow_server


@pytest.fixture(scope="module")
def remote_db() -> Iterator[str]:
    with throwaway_mariadb(prefix="ancora_remote") as url:
        yield url


@pytest.fixture(scope="module")
def hpc_env(
    cluster: SlurmCluster, tracking_uri: str, remote_db: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Settings that point the hpc runner at the test cluster; the job finds the venv's mlflow on PATH."""
    return {
        **cluster.settings_env(tmp_path_factory.mktemp("cluster-home") / "ancora-tasks"),
        "ANCORA_HPC_JOB_SETUP": f'export PATH="{Path(sys.executable).parent}:$PATH"',
        "ANCORA_REMOTE_DB_URL": remote_db,
        "ANCORA_MLFLOW_TRACKING_URI": tracking_uri,
        "ANCORA_REMOTE_POLL_SECONDS": "0.5",
    }


@pytest.fixture(scope="module")
def service(hpc_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The service runs with a secret in its environment, as in production: no job may see it."""
    state = tmp_path_factory.mktemp("service")
    add_user(hpc_env["ANCORA_REMOTE_DB_URL"], "engineer", PASSWORD)
    env = {**hpc_env, "ANCORA_REMOTE_EXECUTOR": "inline", "ANCORA_ADMIN_TOKEN": ADMIN_TOKEN}
    with running_task_service(state, env) as url:
        yield {"url": url, "log": state / "logs" / "task_service.log"}


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding test_data.zip (the pulsar CSV) and test_processor.zip (examples/processor)."""
    folder = tmp_path_factory.mktemp("examples")
    subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "make_zips.py"),
            str(SHARED_DATA / "pulsar" / "HTRU_2.csv"),
            str(folder),
        ],
        check=True,
        capture_output=True,
    )
    return folder


def client_env(service: dict[str, Any]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANCORA_")}
    env.update(
        ANCORA_TASK_SERVICE_URL=service["url"],
        ANCORA_TASK_SERVICE_USERNAME="engineer",
        ANCORA_TASK_SERVICE_PASSWORD=PASSWORD,
    )
    return env


def cancel_script(service: dict[str, Any], task_id: str) -> dict[str, Any]:
    """The seed's cancel script, verbatim, with the task id on stdin; its printed answer."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "seed_000" / "cancel_task.py")],
        env=client_env(service),
        input=task_id,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return dict(ast.literal_eval(result.stdout[result.stdout.index("{") :]))


@pytest.fixture
def client(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in client_env(service).items():
        if key.startswith("ANCORA_"):
            monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    from ancora_client import Submitter, TaskHandler

    return Submitter, TaskHandler


def submit_plain(client: Any, zips: Path, command: str) -> dict[str, Any]:
    """A no-mlflow job on the cpu instance type with the example zips; the submit answer."""
    submitter, _ = client
    response = submitter(
        dataset_file=str(zips / "test_data.zip"),
        processor_file=str(zips / "test_processor.zip"),
        execution_mode="no-mlflow",
        execution_command=command,
        instance_type="cpu",
    ).submit_task()
    return dict(response.json())


def wait_for(handler: Any, statuses: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = dict(handler.get_task_status().json())
        if state["status"] in statuses or time.monotonic() > deadline:
            return state
        time.sleep(0.25)


def test_a_long_job_cancelled_through_the_client_is_cancelled_in_slurm(
    service: dict[str, Any], zips: Path, cluster: SlurmCluster, client: Any
) -> None:
    _, task_handler = client
    submitted = submit_plain(client, zips, "sleep 600")
    task_id, job_id = submitted["id"], submitted["job_id"]
    assert wait_for(task_handler(task_id), {"RUNNING"}, timeout=30)["status"] == "RUNNING"

    started = time.monotonic()
    cancelled = cancel_script(service, task_id)
    state = wait_for(task_handler(task_id), FINISHED, timeout=10)
    elapsed = time.monotonic() - started
    assert cancelled["id"] == task_id
    assert state["status"] == "CANCELLED"
    assert cluster.job_state(job_id) == "CANCELLED"
    assert elapsed < 10


def test_a_failing_command_ends_failed_with_its_log(
    service: dict[str, Any], zips: Path, cluster: SlurmCluster, client: Any
) -> None:
    _, task_handler = client
    submitted = submit_plain(
        client, zips, "python -c \"import sys; print('no such column: pulsar_score'); sys.exit(7)\""
    )
    task_id, job_id = submitted["id"], submitted["job_id"]
    state = wait_for(task_handler(task_id), FINISHED, timeout=60)
    assert state["status"] == "FAILED"
    assert cluster.job_state(job_id) == "FAILED"
    assert "no such column: pulsar_score" in task_handler(task_id).get_task_logs().json()["log"]


JOB_VARIABLES = {"ANCORA_TASK_ID", "DATASET_NAME", "DATASET_DIR", "ANCORA_MODEL_PARAMS"}
SHELL_VARIABLES = {"PWD", "SHLVL", "_", "OLDPWD"}
"""What bash itself exports to the job's command."""


def test_an_hpc_job_starts_with_a_minimal_environment_and_no_service_secret(
    service: dict[str, Any], zips: Path, cluster: SlurmCluster, client: Any
) -> None:
    """The batch script keeps the cluster user's identity, PATH and Slurm's variables, nothing else."""
    _, task_handler = client
    task_id = submit_plain(client, zips, "env")["id"]
    assert wait_for(task_handler(task_id), FINISHED, timeout=60)["status"] == "COMPLETED"
    log = task_handler(task_id).get_task_logs().json()["log"]
    assert ADMIN_TOKEN not in log and PASSWORD not in log
    names = {line.split("=", 1)[0] for line in log.splitlines() if "=" in line}
    kept = {"HOME", "USER", "LOGNAME", "PATH", "SHELL", "LANG", "TERM", "TZ", "TMPDIR", "MODULEPATH"}
    unexpected = {
        name
        for name in names - JOB_VARIABLES - SHELL_VARIABLES - kept
        if not name.startswith(("SLURM_", "SLURMD_", "LC_", "LMOD_"))
    }
    assert unexpected == set(), unexpected
    assert {"PATH", "HOME", *JOB_VARIABLES} <= names
    assert "SSH_CONNECTION" not in log


def test_secrets_never_reach_the_service_log(service: dict[str, Any], cluster: SlurmCluster) -> None:
    log = service["log"].read_text(errors="replace")
    assert "POST /login" in log or "/tasks" in log
    assert PASSWORD not in log
    private_key_body = cluster.key_file.read_text().splitlines()[1]
    assert private_key_body not in log


def test_unknown_or_changed_host_keys_are_refused(
    cluster: SlurmCluster, hpc_env: dict[str, str], tmp_path: Path
) -> None:
    from ancora.remote.runners.hpc import HpcRunner, RemoteCommandFailed

    settings = Settings(**{key.removeprefix("ANCORA_").lower(): value for key, value in hpc_env.items()})
    assert HpcRunner(settings).run("sinfo -h -o %P").strip() == "debug*"

    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(RemoteCommandFailed, match="no host key"):
        HpcRunner(settings.model_copy(update={"hpc_known_hosts": empty})).run("true")

    impostor = paramiko.Ed25519Key.from_private_key_file(str(cluster.key_file))
    changed = tmp_path / "changed_known_hosts"
    changed.write_text(f"[127.0.0.1]:{cluster.ssh_port} ssh-ed25519 {impostor.get_base64()}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        HpcRunner(settings.model_copy(update={"hpc_known_hosts": changed})).run("true")


@pytest.mark.usefixtures("airflow_db")
def test_the_remote_task_dag_submits_follows_and_records_a_slurm_job(
    hpc_env: dict[str, str], zips: Path, cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path `make up` uses: the service records the task, the DAG run submits and follows it."""
    from airflow.dag_processing.dagbag import DagBag

    from ancora.locations import dags_folder
    from ancora.remote.service import SubmissionFields, TaskService
    from ancora.remote.store import User

    for key, value in hpc_env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    service = TaskService(get_settings())
    fields = SubmissionFields(
        dataset_name=None, runner_location="atena02", execution_mode="no-mlflow",
        experiment_name="dag_check", execution_command="python -c \"print('hello from slurm')\"",
        tracking_uri=None, instance_type="cpu", account="default_account", model_params={"alpha": 0.5},
    )  # fmt: skip
    engineer = User(username="engineer", password_hash="", is_admin=False)
    with (zips / "test_data.zip").open("rb") as data, (zips / "test_processor.zip").open("rb") as code:
        task = service.accept(engineer, fields, ("test_data.zip", data), ("test_processor.zip", code))
    assert task.status.value == "PENDING" and task.job_id is None

    dag = DagBag(dag_folder=str(dags_folder())).get_dag("remote_task")
    assert dag is not None
    run = dag.test(run_conf={"task_id": task.id})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states == {"submit": "success", "follow": "success"}, states

    task = service.store.get(task.id)
    assert task.status.value == "COMPLETED"
    assert cluster.job_state(task.job_id or "") == "COMPLETED"
    assert "hello from slurm" in (task.log_tail or "")
    script = Path(task.work_dir or "", "job.sbatch").read_text()
    assert "exec " + shlex.join(["python", "-c", "print('hello from slurm')", "--alpha=0.5"]) in script

    assert service.purge_expired() == [], "a task inside its retention keeps its files"
    retention = timedelta(hours=service.settings.remote_task_retention_hours)
    later = (task.finished_at or task.updated_at) + retention + timedelta(minutes=1)
    assert task.id in service.purge_expired(at=later)
    assert not Path(task.work_dir or "").exists(), "the cluster's work folder is removed"
    assert not Path(task.local_dir).exists(), "the service's task folder is removed"
    purged = service.store.get(task.id)
    assert purged.purged_at is not None and purged.disk_bytes == 0
    assert "hello from slurm" in (purged.log_tail or ""), "the record and its log tail stay"
    service.close()
