"""Seed 000's usage examples (section 1.3), run as written against the task service and real Slurm,
by a Python 3.9 that has only the ancora-client wheel and requests (tests/support/client_wheel.py), as
on a login node.

The four scripts are the seed's text (examples/seed_000/, checked against the seed document here):
the submit script with ``execution_command="mlflow run measurements_regression_training_right"``,
``account="twinscie"`` and ``n_estimators=2, random_state=42``; the status, run id and cancel
scripts read the task id from ``input()`` and get it on stdin. The processor zip holds the MLflow
project folder the seed names, with an MLproject and no environment file.

The operator's side is what docs/remote.md tells an operator to set: ``atena02`` mapped to the hpc
runner (the default), ``twinscie`` allowed in ANCORA_HPC_ACCOUNTS, and ANCORA_HPC_JOB_SETUP putting
an environment with MLflow on PATH (the compute node downloads nothing: the service adds
``--env-manager local``, ANCORA_REMOTE_MLFLOW_ENV_MANAGER's default).
"""

from __future__ import annotations

import ast
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SHARED_DATA
from tests.support.client_wheel import (
    CLIENT_DISTRIBUTIONS,
    CLIENT_PYTHON,
    clean_environment,
    installed_distributions,
)
from tests.support.repo import REPO_ROOT
from tests.support.seeds import COPIES, SEED_000, seed_000_scripts
from tests.support.slurm import SlurmCluster
from tests.support.task_service import add_user, running_task_service

pytestmark = pytest.mark.integration

PASSWORD = "seed-" + secrets.token_hex(8)
FINISHED = {"COMPLETED", "FAILED", "CANCELLED"}
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def test_the_kept_scripts_are_the_seed_documents_text() -> None:
    """examples/seed_000/ holds the seed's scripts byte for byte (PDF line continuations joined)."""
    extracted = seed_000_scripts(SEED_000)
    assert set(extracted) == {path.name for path in COPIES.glob("*.py")}
    for name, text in extracted.items():
        assert (COPIES / name).read_text(encoding="utf-8") == text, name
    submit = extracted["submit_task.py"]
    assert 'execution_command="mlflow run measurements_regression_training_right"' in submit
    assert "input('Entre com o seu task_id: ')" in extracted["get_run_id.py"]


@pytest.fixture(scope="module")
def service(
    slurm_cluster: SlurmCluster, sqlite_mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    state = tmp_path_factory.mktemp("seed-service")
    env = {
        **slurm_cluster.settings_env(tmp_path_factory.mktemp("seed-cluster-home") / "ancora-tasks"),
        "ANCORA_HPC_ACCOUNTS": '{"default_account":"","twinscie":"twinscie"}',
        "ANCORA_HPC_JOB_SETUP": f'export PATH="{Path(sys.executable).parent}:$PATH"',
        "ANCORA_MLFLOW_TRACKING_URI": sqlite_mlflow_server,
        "ANCORA_REMOTE_EXECUTOR": "inline",
        "ANCORA_REMOTE_POLL_SECONDS": "0.5",
    }
    add_user(f"sqlite:///{state / 'task_service' / 'tasks.db'}", "twinscie-engineer", PASSWORD)
    with running_task_service(state, env) as url:
        yield url


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder a user runs the scripts in: test_data.zip and test_processor.zip, as the seed names them."""
    folder = tmp_path_factory.mktemp("seed-user")
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "examples" / "make_zips.py"),
            str(SHARED_DATA / "pulsar" / "HTRU_2.csv"),
            str(folder),
        ],
        check=True,
        capture_output=True,
    )
    return folder


@pytest.fixture(scope="module")
def run_script(client_python: Path, service: str, workdir: Path) -> Callable[..., str]:
    """Runs one of the seed's scripts, exactly as kept, with the 3.9 virtualenv's python in the user's
    folder; gives its standard output."""

    def run(name: str, stdin: str = "") -> str:
        env = {key: value for key, value in clean_environment().items() if not key.startswith("ANCORA_")}
        env.update(
            ANCORA_TASK_SERVICE_URL=service,
            ANCORA_TASK_SERVICE_USERNAME="twinscie-engineer",
            ANCORA_TASK_SERVICE_PASSWORD=PASSWORD,
        )
        result = subprocess.run(
            [str(client_python), str(COPIES / name)],
            cwd=workdir,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    return run


def test_the_scripts_python_is_3_9_with_only_the_client_wheel_and_requests(client_python: Path) -> None:
    """The scripts below import biganchoring_ml_module from the installed wheel, nothing of the checkout."""
    probe = (
        "import sys, biganchoring_ml_module, ancora_client\n"
        "print(*sys.version_info[:2], biganchoring_ml_module.__file__, ancora_client.__file__)\n"
        "print(any(name.split('.')[0] == 'ancora' for name in sys.modules))"
    )
    answer = subprocess.run(
        [str(client_python), "-c", probe],
        cwd=COPIES,
        env=clean_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    major, minor, *files, ancora_loaded = answer.stdout.split()
    assert (int(major), int(minor)) == CLIENT_PYTHON
    site_packages = client_python.parent.parent / "lib" / "python3.9" / "site-packages"
    assert all(Path(file).is_relative_to(site_packages) for file in files), files
    assert ancora_loaded == "False"
    assert installed_distributions(client_python) == CLIENT_DISTRIBUTIONS


def printed_dict(output: str) -> dict[str, Any]:
    """The status, run id and cancel scripts print the response JSON as a dict after input()'s prompt."""
    return dict(ast.literal_eval(output[output.index("{") :]))


def submitted(output: str) -> dict[str, str]:
    """The submit script prints ``Job ID:``, ``ID:``, ``experiment_name:`` and ``instance_type:`` lines."""
    return dict(line.split(": ", 1) for line in output.strip().splitlines())


def job_log(service: str, task_id: str) -> str:
    """The end of the job's output (for a failure message)."""
    token = httpx.post(
        f"{service}/login", json={"username": "twinscie-engineer", "password": PASSWORD}, timeout=30
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    answer = httpx.get(f"{service}/tasks/{task_id}/logs", headers=headers, timeout=30)
    return str(answer.json()["log"])


def mlflow_client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


def test_submit_status_and_run_id_as_written(
    run_script: Callable[..., str], service: str, slurm_cluster: SlurmCluster, sqlite_mlflow_server: str
) -> None:
    started = time.monotonic()
    printed = submitted(run_script("submit_task.py"))
    assert printed["experiment_name"] == "test_lib" and printed["instance_type"] == "gpu"
    task_id, job_id = printed["ID"], printed["Job ID"]

    early = printed_dict(run_script("get_run_id.py", stdin=task_id))
    readable_after = time.monotonic() - started
    assert RUN_ID.match(early["run_id"] or ""), early
    assert early["status"] in {"PENDING", "RUNNING"}, "the run id is readable before the job ends"
    print(f"submit -> readable run id: {readable_after:.2f} s (two client processes included)")

    status = printed_dict(run_script("get_status.py", stdin=task_id))
    assert status["id"] == task_id and status["status"] in {"PENDING", "RUNNING", "COMPLETED"}

    deadline = time.monotonic() + 240
    while status["status"] not in FINISHED and time.monotonic() < deadline:
        time.sleep(1)
        status = printed_dict(run_script("get_status.py", stdin=task_id))
    assert status["status"] == "COMPLETED", job_log(service, task_id)
    assert slurm_cluster.job_state(job_id) == "COMPLETED"
    assert "Account=twinscie" in slurm_cluster.slurm("scontrol", "show", "job", "-o", job_id)

    final = printed_dict(run_script("get_run_id.py", stdin=task_id))
    assert final["run_id"] == early["run_id"], "the job logged into the run the service created"
    run = mlflow_client(sqlite_mlflow_server).get_run(final["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["n_estimators"] == "2" and run.data.params["random_state"] == "42"
    assert run.data.params["target"] == "mean_integrated_profile"
    assert "r2" in run.data.metrics and "mae" in run.data.metrics
    assert run.data.tags["ancora.task_id"] == task_id
    assert run.data.tags["mlflow.user"] == "twinscie-engineer"
    assert run.data.tags["dataset"] == "Dataset_name"
    assert mlflow_client(sqlite_mlflow_server).get_experiment(run.info.experiment_id).name == "test_lib"

    cancelled_late = printed_dict(run_script("cancel_task.py", stdin=task_id))
    assert cancelled_late["status"] == "COMPLETED", "cancelling a finished task changes nothing"


def test_cancel_as_written_stops_the_job_and_its_run(
    run_script: Callable[..., str], slurm_cluster: SlurmCluster, sqlite_mlflow_server: str
) -> None:
    """The cluster is busy (a job holds every CPU), so the seed's job waits in the queue; the cancel
    script then cancels it in Slurm, and the task's MLflow run ends KILLED."""
    cpus = os.cpu_count() or 1
    blocker = slurm_cluster.slurm(
        "sbatch", "--parsable", f"--cpus-per-task={cpus}", "--wrap", "sleep 300", "--output=/dev/null"
    ).strip()
    try:
        deadline = time.monotonic() + 30
        while slurm_cluster.job_state(blocker) != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert slurm_cluster.job_state(blocker) == "RUNNING"
        printed = submitted(run_script("submit_task.py"))
        task_id, job_id = printed["ID"], printed["Job ID"]
        assert slurm_cluster.job_state(job_id) == "PENDING"
        run_id = printed_dict(run_script("get_run_id.py", stdin=task_id))["run_id"]
        assert RUN_ID.match(run_id or "")

        answer = printed_dict(run_script("cancel_task.py", stdin=task_id))
        assert answer["id"] == task_id
        deadline = time.monotonic() + 30
        status = answer
        while status["status"] not in FINISHED and time.monotonic() < deadline:
            time.sleep(0.5)
            status = printed_dict(run_script("get_status.py", stdin=task_id))
        assert status["status"] == "CANCELLED", status
        assert slurm_cluster.job_state(job_id) == "CANCELLED"
        assert mlflow_client(sqlite_mlflow_server).get_run(run_id).info.status == "KILLED"
    finally:
        slurm_cluster.slurm("scancel", blocker)
