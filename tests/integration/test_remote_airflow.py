"""The stack's path: the task service hands each submission to Airflow as a `remote_task` DAG run.

A real Airflow API server (on the test session's Airflow database, with the DAGs serialized) receives
the trigger through the REST API v2 client; no scheduler runs, so the run stays queued, which is all
this test needs: the run exists with the task's id in its conf and the client sees it as the job id.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ancora.clients.airflow import AirflowClient, AirflowError
from ancora.config import get_settings
from tests.support.mlflow_server import stop_process
from tests.support.simulator import free_port
from tests.support.task_service import add_user, running_task_service

pytestmark = pytest.mark.integration
START_TIMEOUT_SECONDS = 240.0


@pytest.fixture(scope="module")
def airflow_api(airflow_db: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`airflow api-server` on a free port; yields its URL and the generated admin password."""
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "reserialize"],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    log_path = tmp_path_factory.mktemp("airflow-api") / "api-server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        passwords = json.loads(
            Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text()
        )
        yield {"url": url, "port": port, "password": passwords["admin"]}
    finally:
        stop_process(process)


def test_the_rest_client_lists_pauses_and_triggers_dags(airflow_api: dict[str, Any]) -> None:
    with AirflowClient(airflow_api["url"], "admin", airflow_api["password"]) as airflow:
        assert "remote_task" in {dag["dag_id"] for dag in airflow.list_dags(tags=["remote"])}
        assert airflow.pause("remote_task")["is_paused"] is True
        assert airflow.unpause("remote_task")["is_paused"] is False
        run = airflow.trigger_dag_run(
            "remote_task", conf={"task_id": "0" * 32}, run_id="remote__client_check"
        )
        assert run["dag_run_id"] == "remote__client_check"
        assert airflow.get_dag_run("remote_task", "remote__client_check")["conf"] == {"task_id": "0" * 32}
        assert "remote__client_check" in {r["dag_run_id"] for r in airflow.list_dag_runs("remote_task")}
    with (
        pytest.raises(AirflowError) as refused,
        AirflowClient(airflow_api["url"], "admin", "wrong") as airflow,
    ):
        airflow.list_dags()
    assert refused.value.status_code == 401


def test_a_submission_becomes_a_remote_task_dag_run(
    airflow_api: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "service"
    db_url = f"sqlite:///{state / 'task_service' / 'tasks.db'}"
    add_user(db_url, "engineer", "engineer-password")
    env = {
        "ANCORA_REMOTE_EXECUTOR": "airflow",
        "ANCORA_AIRFLOW_PORT": str(airflow_api["port"]),
        "ANCORA_AIRFLOW_PASSWORD": airflow_api["password"],
    }
    dataset, processor = tmp_path / "d.zip", tmp_path / "p.zip"
    for path in (dataset, processor):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("job.py", "print('hi')")
    with running_task_service(state, env) as url:
        monkeypatch.setenv("ANCORA_TASK_SERVICE_URL", url)
        monkeypatch.setenv("ANCORA_TASK_SERVICE_USERNAME", "engineer")
        monkeypatch.setenv("ANCORA_TASK_SERVICE_PASSWORD", "engineer-password")
        get_settings.cache_clear()
        from ancora_client import Submitter, TaskHandler

        submitted = Submitter(
            dataset_file=str(dataset), processor_file=str(processor), runner_location="atena02",
            execution_mode="no-mlflow", execution_command="python job.py", instance_type="cpu",
        ).submit_task().json()  # fmt: skip
        assert submitted["job_id"] == f"remote__{submitted['id']}"
        assert submitted["status"] == "PENDING"
        assert (
            TaskHandler(submitted["id"]).get_task_status().json()["detail"]
            == "queued in Airflow (remote_task)"
        )

    with AirflowClient(airflow_api["url"], "admin", airflow_api["password"]) as airflow:
        run = airflow.get_dag_run("remote_task", submitted["job_id"])
    assert run["conf"] == {"task_id": submitted["id"]}
    assert run["state"] == "queued"


def test_an_unreachable_airflow_fails_the_task_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ancora.remote.service import ExecutorUnavailable, SubmissionFields, TaskService
    from ancora.remote.store import User

    monkeypatch.setenv("ANCORA_AIRFLOW_PORT", str(free_port()))
    monkeypatch.setenv("ANCORA_AIRFLOW_PASSWORD", "irrelevant")
    get_settings.cache_clear()
    service = TaskService(get_settings())
    archive_path = tmp_path / "a.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("job.py", "print('hi')")
    fields = SubmissionFields(
        dataset_name="d", runner_location="atena02", execution_mode="no-mlflow", experiment_name="e",
        execution_command="python job.py", tracking_uri=None, instance_type="cpu", account="default_account",
        model_params={},
    )  # fmt: skip
    with (
        archive_path.open("rb") as first,
        archive_path.open("rb") as second,
        pytest.raises(ExecutorUnavailable),
    ):
        service.submit(User("engineer", "", False), fields, ("d.zip", first), ("p.zip", second))
    (task,) = service.store.list_tasks()
    assert task.status.value == "FAILED"
    assert "not reachable" in task.detail
    service.close()


@pytest.mark.usefixtures("airflow_db")
def test_the_remote_task_dag_gives_a_local_job_none_of_airflows_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In compose's Airflow mode the DAG's submit task starts the job inside the worker, next to
    Airflow's Fernet key and database URL: the runner hands it the minimal environment only."""
    from airflow.dag_processing.dagbag import DagBag

    from ancora.locations import dags_folder
    from ancora.remote.service import SubmissionFields, TaskService
    from ancora.remote.store import User

    airflow_secrets = {name: value for name, value in os.environ.items() if name.startswith("AIRFLOW__")}
    assert "AIRFLOW__CORE__FERNET_KEY" in airflow_secrets
    admin_token = "admin-" + os.urandom(12).hex()
    job_root = Path(tempfile.mkdtemp(prefix="ancora-jobs-"))
    job_root.chmod(0o711)
    for name, value in {
        "ANCORA_REMOTE_LOCATIONS": '{"worker":"local"}',
        "ANCORA_REMOTE_LOCAL_ENABLED": "true",
        "ANCORA_REMOTE_LOCAL_RUN_AS": "nobody",
        "ANCORA_REMOTE_LOCAL_WORK_ROOT": str(job_root),
        "ANCORA_REMOTE_POLL_SECONDS": "0.2",
        "ANCORA_ADMIN_TOKEN": admin_token,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    service = TaskService(get_settings())
    archive_path = tmp_path / "a.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("rows.csv", "a\n1\n")
    fields = SubmissionFields(
        dataset_name="d", runner_location="worker", execution_mode="no-mlflow", experiment_name="e",
        execution_command="sh -c 'id -u; env'", tracking_uri=None, instance_type="cpu",
        account="default_account", model_params={},
    )  # fmt: skip
    try:
        with archive_path.open("rb") as first, archive_path.open("rb") as second:
            task = service.accept(User("ada", "", True), fields, ("d.zip", first), ("p.zip", second))
        dag = DagBag(dag_folder=str(dags_folder())).get_dag("remote_task")
        assert dag is not None
        run = dag.test(run_conf={"task_id": task.id})
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        assert states == {"submit": "success", "follow": "success"}, states
        task = service.store.get(task.id)
        log = task.log_tail or ""
        assert task.status.value == "COMPLETED", log
        assert log.splitlines()[0] == "65534"
        assert "AIRFLOW" not in log and admin_token not in log
        for value in airflow_secrets.values():
            assert len(value) < 8 or value not in log
    finally:
        service.close()
        shutil.rmtree(job_root, ignore_errors=True)
