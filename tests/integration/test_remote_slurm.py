"""Remote execution against a real single-node Slurm cluster behind a real sshd.

The usage examples of the client library run unchanged as scripts: the pulsar random forest
reaches COMPLETED and its MLflow run exists with n_estimators=2; a long job is cancelled through the
client and Slurm confirms it; a failing command ends FAILED with its log. The service keeps its
state in MariaDB and follows jobs itself (inline); the remote_task DAG is run once with dag.test().
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
from pathlib import Path
from typing import Any

import paramiko
import pytest

from ancora.config import PROJECT_ROOT, Settings, get_settings
from tests.conftest import SHARED_DATA
from tests.support.databases import throwaway_mariadb
from tests.support.mlflow_server import running_mlflow_server
from tests.support.slurm import SlurmCluster, running_slurm
from tests.support.task_service import add_user, running_task_service

pytestmark = pytest.mark.integration

EXAMPLES = PROJECT_ROOT / "examples"
PASSWORD = "slurm-" + secrets.token_hex(8)
FINISHED = {"COMPLETED", "FAILED", "CANCELLED"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    with running_slurm(tmp_path_factory.mktemp("slurm")) as running:
        yield running


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield url


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
    state = tmp_path_factory.mktemp("service")
    add_user(hpc_env["ANCORA_REMOTE_DB_URL"], "engineer", PASSWORD)
    with running_task_service(state, {**hpc_env, "ANCORA_REMOTE_EXECUTOR": "inline"}) as url:
        yield {"url": url, "log": state / "logs" / "task_service.log"}


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the examples run in, holding test_data.zip and test_processor.zip."""
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


def example(name: str, service: dict[str, Any], cwd: Path, stdin: str = "") -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=cwd,
        env=client_env(service),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def answer(output: str) -> dict[str, Any]:
    """The examples print the response JSON as a Python dict, after input()'s prompt."""
    return dict(ast.literal_eval(output[output.index("{") :]))


@pytest.fixture
def client(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in client_env(service).items():
        if key.startswith("ANCORA_"):
            monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    from ancora.client import Submitter, TaskHandler

    return Submitter, TaskHandler


def wait_for(handler: Any, statuses: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = dict(handler.get_task_status().json())
        if state["status"] in statuses or time.monotonic() > deadline:
            return state
        time.sleep(0.25)


def test_the_usage_examples_train_on_slurm_and_log_to_mlflow(
    service: dict[str, Any], zips: Path, cluster: SlurmCluster, tracking_uri: str, client: Any
) -> None:
    job_id, task_id = example("submit_task.py", service, zips).split()
    assert cluster.job_state(job_id) in {"PENDING", "RUNNING", "COMPLETED"}

    _, task_handler = client
    done = wait_for(task_handler(task_id), FINISHED, timeout=240)
    assert done["status"] == "COMPLETED", task_handler(task_id).get_task_logs().json()["log"]
    assert answer(example("get_status.py", service, zips, task_id))["status"] == "COMPLETED"
    assert cluster.job_state(job_id) == "COMPLETED"
    details = cluster.slurm("scontrol", "show", "job", "-o", job_id)
    assert "Account=twinscie" in details and "Partition=debug" in details

    run_id = answer(example("get_run_id.py", service, zips, task_id))["run_id"]
    assert run_id and len(run_id) == 32
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri).get_run(run_id)
    assert run.data.params["n_estimators"] == "2"
    assert run.data.params["random_state"] == "42"
    assert run.data.metrics["f1"] > 0.5
    assert MlflowClient(tracking_uri).get_experiment(run.info.experiment_id).name == "test_lib"

    cancelled_late = answer(example("cancel_task.py", service, zips, task_id))
    assert cancelled_late["status"] == "COMPLETED", "cancelling a finished task changes nothing"


def test_a_long_job_cancelled_through_the_client_is_cancelled_in_slurm(
    service: dict[str, Any], zips: Path, cluster: SlurmCluster, client: Any
) -> None:
    submitter, task_handler = client
    response = submitter(
        dataset_file=str(zips / "test_data.zip"),
        processor_file=str(zips / "test_processor.zip"),
        execution_mode="no-mlflow",
        execution_command="sleep 600",
        instance_type="cpu",
    ).submit_task()
    task_id, job_id = response.json()["id"], response.json()["job_id"]
    assert wait_for(task_handler(task_id), {"RUNNING"}, timeout=30)["status"] == "RUNNING"

    started = time.monotonic()
    cancelled = answer(example("cancel_task.py", service, zips, task_id))
    state = wait_for(task_handler(task_id), FINISHED, timeout=10)
    elapsed = time.monotonic() - started
    assert cancelled["id"] == task_id
    assert state["status"] == "CANCELLED"
    assert cluster.job_state(job_id) == "CANCELLED"
    assert elapsed < 10


def test_a_failing_command_ends_failed_with_its_log(
    service: dict[str, Any], zips: Path, cluster: SlurmCluster, client: Any
) -> None:
    submitter, task_handler = client
    response = submitter(
        dataset_file=str(zips / "test_data.zip"),
        processor_file=str(zips / "test_processor.zip"),
        execution_mode="no-mlflow",
        execution_command="python -c \"import sys; print('no such column: pulsar_score'); sys.exit(7)\"",
        instance_type="cpu",
    ).submit_task()
    task_id, job_id = response.json()["id"], response.json()["job_id"]
    state = wait_for(task_handler(task_id), FINISHED, timeout=60)
    assert state["status"] == "FAILED"
    assert cluster.job_state(job_id) == "FAILED"
    assert "no such column: pulsar_score" in task_handler(task_id).get_task_logs().json()["log"]


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

    from ancora.airflow_env import DAGS_FOLDER
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

    dag = DagBag(dag_folder=str(DAGS_FOLDER)).get_dag("remote_task")
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
    service.close()
