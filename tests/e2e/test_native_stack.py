"""The native stack end to end, started exactly as `make up` starts it.

Every service gets a free port and the state lives in a temporary folder, so the test never meets
a stack a developer runs. The tests share one stack and run in file order; the last one stops it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ancora.airflow_env import passwords_file
from ancora.locations import dags_folder
from ancora.stack.processes import is_running
from tests.support.native_stack import HTTP_TIMEOUT, RunningStack, native_stack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

COLLECT_DAG_ID = "covertype_collect"
COLLECT_DAG_FILE = dags_folder() / f"{COLLECT_DAG_ID}.py"
ALL_INTERFACES = {"0.0.0.0", "*", "[::]", "::"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with native_stack(tmp_path_factory.mktemp("native-stack")) as running:
        yield running


def test_every_service_is_healthy(stack: RunningStack) -> None:
    settings = stack.settings
    local = httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False)
    assert local.get(f"{settings.simulator_url}/health").status_code == 200
    assert local.get(f"http://127.0.0.1:{settings.mlflow_port}/health").status_code == 200
    assert local.get(f"http://127.0.0.1:{settings.task_service_port}/health").status_code == 200
    assert local.get(f"{settings.inference_url}/health").status_code == 200
    assert local.get(f"{settings.ui_url}/_stcore/health").status_code == 200
    health = local.get(f"{settings.airflow_api_url}/api/v2/monitor/health").json()
    for component in ("metadatabase", "scheduler", "dag_processor", "triggerer"):
        assert health[component]["status"] == "healthy", health

    status = stack.ancora("stack", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert str(passwords_file(settings)) in stack.up_output
    assert settings.airflow_api_url in stack.up_output


def test_admin_logs_in_and_lists_dags(stack: RunningStack) -> None:
    with stack.airflow() as airflow:
        response = airflow.get("/api/v2/dags")
    assert response.status_code == 200, response.text
    assert "dags" in response.json()


def test_nothing_listens_on_all_interfaces(stack: RunningStack) -> None:
    pids = set(stack.processes())
    listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    ours = []
    for line in listening.splitlines():
        owners = {int(part.split(",")[0]) for part in line.split("pid=")[1:]}
        if owners & pids:
            local_address = line.split()[3]
            host, _, port = local_address.rpartition(":")
            ours.append((host, int(port)))
    assert not [entry for entry in ours if entry[0] in ALL_INTERFACES], ours
    s = stack.settings
    expected = {
        s.airflow_port,
        s.mlflow_port,
        s.simulator_port,
        s.task_service_port,
        s.inference_port,
        s.ui_port,
    }
    assert expected <= {port for host, port in ours if host == "127.0.0.1"}, ours


def test_up_again_reports_what_runs(stack: RunningStack) -> None:
    before = stack.leaders()
    again = stack.ancora("stack", "up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already running" in again.stdout
    assert stack.leaders() == before


def test_collect_dag_run_succeeds_and_stores_rows(stack: RunningStack) -> None:
    if not COLLECT_DAG_FILE.exists():
        pytest.fail(f"{COLLECT_DAG_FILE} is missing: the collect DAG must be in ancora_airflow/dags/")
    with stack.airflow() as airflow:

        def dag_known() -> bool:
            return airflow.get(f"/api/v2/dags/{COLLECT_DAG_ID}").status_code == 200

        assert wait_for(dag_known, 120), f"{COLLECT_DAG_ID} was not parsed within 120 s"
        airflow.patch(f"/api/v2/dags/{COLLECT_DAG_ID}", json={"is_paused": False}).raise_for_status()

        def runs() -> list[dict[str, Any]]:
            response = airflow.get(f"/api/v2/dags/{COLLECT_DAG_ID}/dagRuns")
            response.raise_for_status()
            return list(response.json()["dag_runs"])

        if not wait_for(runs, 20):
            triggered = airflow.post(f"/api/v2/dags/{COLLECT_DAG_ID}/dagRuns", json={"logical_date": None})
            assert triggered.status_code == 200, triggered.text

        def finished() -> list[dict[str, Any]]:
            return [run for run in runs() if run["state"] in ("success", "failed")]

        done = wait_for(finished, 300, every=3)
        assert done, f"no {COLLECT_DAG_ID} run finished within 300 s: {runs()}"
        succeeded = [run for run in done if run["state"] == "success"]
        assert succeeded, done

        # Without the log servers (--skip-serve-logs) the API server reads finished task logs from files.
        fetch_task = f"/api/v2/dags/{COLLECT_DAG_ID}/dagRuns/{succeeded[0]['dag_run_id']}/taskInstances/fetch"
        attempt = airflow.get(fetch_task).json()["try_number"]
        task_log = airflow.get(f"{fetch_task}/logs/{attempt}", headers={"Accept": "application/json"})
        assert task_log.status_code == 200, task_log.text
        assert task_log.json()["content"], task_log.text
        assert "Could not read served logs" not in task_log.text

    stats = stack.ancora("data", "stats")
    assert stats.returncode == 0, stats.stderr
    counts = json.loads(stats.stdout.strip().splitlines()[-1])
    assert counts["total_rows"] > 0, counts


def test_down_stops_every_process(stack: RunningStack) -> None:
    launched = stack.processes()
    assert len(launched) >= len(stack.leaders()) > 0
    down = stack.ancora("stack", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    survivors = [info for info in launched.values() if is_running(info.pid, info.start_ticks)]
    assert not survivors, survivors
    assert not list(stack.settings.run_dir.glob("*.pid"))
