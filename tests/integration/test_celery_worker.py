"""Scale-out for real: Airflow's CeleryExecutor hands covertype_collect to a separate Celery worker.

Real processes throughout: the native stack's api-server, scheduler and dag-processor on a throwaway
PostgreSQL metadata database, a real `airflow celery worker` consuming a queue of its own on this
machine's Redis (RabbitMQ, the documented alternative, in the second case), the data API simulator,
and the raw store on MariaDB. The worker writes a hostname of its own on the task instances it runs, so
the task instances themselves say who ran them; the Celery result backend (a table in the metadata
database) holds the worker's result of every task, keyed by the id the scheduler recorded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ancora.clients.airflow import AirflowClient, AirflowError
from ancora.config import Settings
from ancora.stack.supervisor import tail
from ancora.store import open_raw_store
from ancora.store.tables import raw_rows
from tests.support.celery import (
    CeleryAirflow,
    migrate_metadata_database,
    running_celery_airflow,
    waiting_messages,
)
from tests.support.databases import throwaway_postgres
from tests.support.simulator import free_port, running_simulator

pytestmark = pytest.mark.integration

REDIS_TEST_DB = 11
"""A Redis database of its own, so the test's queues never mix with anything else on this machine."""
BROKERS = {
    "redis": f"redis://127.0.0.1:6379/{REDIS_TEST_DB}",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}
COLLECT_TASKS = {"fetch", "validate", "store", "publish"}
RUN_TIMEOUT_SECONDS = 180.0
HTTP_TIMEOUT_SECONDS = 60.0
"""Generous: the API server shares two cores with the scheduler, the worker and its task processes."""
GROUP = 4


def wait_for_dag(airflow: AirflowClient, dag_id: str, timeout: float = 90.0) -> None:
    """The dag-processor serializes the DAG files shortly after it starts; until then the API says 404."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            airflow.get_dag(dag_id)
            return
        except AirflowError as problem:
            if problem.status_code != 404 or time.monotonic() > deadline:
                raise
        time.sleep(1)


def wait_for_run(stack: CeleryAirflow, airflow: AirflowClient, dag_id: str, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while True:
        run = airflow.get_dag_run(dag_id, run_id)
        if run["state"] in ("success", "failed"):
            return run
        if time.monotonic() > deadline:
            logs = "\n".join(
                f"--- {name}\n{tail(stack.supervisor.log_file(name), 40)}"
                for name in ("airflow-scheduler", "airflow-celery-worker")
            )
            raise AssertionError(f"{dag_id} run {run_id} still {run['state']}:\n{logs}")
        time.sleep(2)


def celery_results(metadata_url: str, task_ids: list[str], timeout: float = 30.0) -> dict[str, str]:
    """Status of each Celery task in the result backend (the `celery_taskmeta` table).

    The worker reports the task instance's state to the api-server before its Celery task returns, so
    the run may be over a moment before the last result is stored: wait for final states.
    """
    query = sa.text("SELECT task_id, status FROM celery_taskmeta WHERE task_id IN :ids").bindparams(
        sa.bindparam("ids", expanding=True)
    )
    engine = sa.create_engine(metadata_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as connection:
                results = {row.task_id: row.status for row in connection.execute(query, {"ids": task_ids})}
            done = len(results) == len(task_ids) and not {"PENDING", "STARTED"} & set(results.values())
            if done or time.monotonic() > deadline:
                return results
            time.sleep(0.5)
    finally:
        engine.dispose()


def external_executor_ids(metadata_url: str, dag_id: str, run_id: str) -> dict[str, str | None]:
    """The Celery task id the scheduler recorded on each task instance (not in the public API)."""
    engine = sa.create_engine(metadata_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT task_id, external_executor_id FROM task_instance "
                    "WHERE dag_id = :dag_id AND run_id = :run_id"
                ),
                {"dag_id": dag_id, "run_id": run_id},
            )
            return {row.task_id: row.external_executor_id for row in rows}
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def metadata_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Airflow's metadata on a throwaway PostgreSQL database (CeleryExecutor refuses SQLite), migrated
    once for both brokers."""
    with throwaway_postgres(prefix="ancora_celery") as url:
        migrate_metadata_database(url, tmp_path_factory.mktemp("airflow-migrate"))
        yield url


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_a_celery_worker_runs_the_collection_dag(
    broker: str, tmp_path: Path, mariadb_url: str, metadata_url: str
) -> None:
    broker_url = BROKERS[broker]
    with running_simulator(tmp_path / "simulator", rotation_seconds=300, seed=7) as simulator_url:
        settings = Settings(
            state_dir=tmp_path / "state",
            airflow_port=free_port(),
            data_api_url=simulator_url,
            group_number=GROUP,
            data_db_url=mariadb_url,
            collect_schedule="0 0 1 1 *",  # one scheduled run at most (see below)
            # The api-server outlives SIGTERM for more than 15 s here; the test need not wait that long.
            stack_stop_timeout_seconds=5.0,
        )
        with (
            running_celery_airflow(settings, broker_url, metadata_url) as stack,
            AirflowClient.from_settings(settings, timeout=HTTP_TIMEOUT_SECONDS) as airflow,
        ):
            # Every DAG starts paused here (training would follow the Asset event, dispatches their cron):
            # the worker runs the collection DAG and nothing else. Unpausing it also schedules its latest
            # cron tick (the one run catchup=False keeps), which runs before the triggered run.
            wait_for_dag(airflow, "covertype_collect")
            airflow.unpause("covertype_collect")
            run_id = airflow.trigger_dag_run("covertype_collect", run_id=f"celery__{broker}")["dag_run_id"]
            run = wait_for_run(stack, airflow, "covertype_collect", run_id)
            instances = airflow.list_task_instances("covertype_collect", run_id)
            other_dags_run = [
                dag["dag_id"]
                for dag in airflow.list_dags()
                if dag["dag_id"] != "covertype_collect" and airflow.list_dag_runs(dag["dag_id"])
            ]
            celery_ids = external_executor_ids(stack.metadata_url, "covertype_collect", run_id)
            results = celery_results(stack.metadata_url, [i for i in celery_ids.values() if i])
            waiting = waiting_messages(broker_url, stack.queue)

    assert run["state"] == "success", instances
    assert other_dags_run == []
    assert {ti["task_id"] for ti in instances} == COLLECT_TASKS
    for ti in instances:
        assert ti["state"] == "success", ti
        assert ti["hostname"] == stack.worker_name, ti  # written by the worker process, nobody else
        assert ti["queue"] == stack.queue, ti  # the queue only that worker consumes
    assert all(celery_ids.values()), celery_ids
    assert results == {celery_id: "SUCCESS" for celery_id in celery_ids.values()}
    assert waiting == 0

    with open_raw_store(mariadb_url).engine.connect() as connection:
        stored = connection.execute(
            sa.select(sa.func.count()).select_from(raw_rows).where(raw_rows.c.run_id == run_id)
        ).scalar_one()
        groups = set(connection.execute(sa.select(raw_rows.c.group_number).distinct()).scalars())
    assert stored > 0
    assert groups == {GROUP}
