"""Airflow scaled out on Celery for tests: the native stack's Airflow services plus a Celery worker.

The api-server, scheduler and dag-processor are the very `Service` entries `make up` runs (taken from
``native_stack``), started by the same supervisor; only the executor settings differ, as they do in
compose's ``celery`` profile. CeleryExecutor refuses SQLite, so the metadata database is a throwaway
PostgreSQL database of this machine; the broker is this machine's Redis (or RabbitMQ).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import kombu
import redis
from amqp.exceptions import ChannelError

from ancora.config import Settings
from ancora.stack.services import HealthCheck, Service, Stack, child_environment, native_stack
from ancora.stack.supervisor import Supervisor
from tests.support.repo import REPO_ROOT
from tests.support.simulator import free_port

AIRFLOW_SERVICES = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor")
WORKER_HOSTNAME_VARIABLE = "CELERY_TEST_WORKER_HOSTNAME"


def worker_hostname() -> str:
    """Airflow's ``hostname_callable`` inside the worker: the name the worker writes on its tasks."""
    return os.environ[WORKER_HOSTNAME_VARIABLE]


@dataclass(frozen=True)
class CeleryAirflow:
    settings: Settings
    supervisor: Supervisor
    metadata_url: str
    queue: str
    worker_name: str


def celery_stack(
    settings: Settings, metadata_url: str, broker_url: str, queue: str, worker_name: str
) -> Stack:
    """Api-server, scheduler and dag-processor as `make up` runs them, plus one `airflow celery worker`.

    No migration job: the metadata database is migrated once (`migrate_metadata_database`) and shared.
    """
    native = native_stack(settings)
    services = [service for service in native.services if service.name in AIRFLOW_SERVICES]
    log_server_port = free_port()
    argv = (sys.executable, "-m", "airflow", "celery", "worker", "--queues", queue, "--concurrency", "2")
    worker = Service(
        name="airflow-celery-worker",
        argv=(*argv, "--celery-hostname", f"{worker_name}@%h"),
        # The worker serves its task logs to the api-server over HTTP (JWT required: 403 without one);
        # that server starts right before the Celery consumer, so an answer means the worker is up.
        health=HealthCheck(f"http://127.0.0.1:{log_server_port}/log/", lambda r: r.status_code in (403, 404)),
        env={
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_server_port),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.support.celery.worker_hostname",
            WORKER_HOSTNAME_VARIABLE: worker_name,
        },
    )
    executor = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        # psycopg 3 has an asyncio mode; Airflow would otherwise derive an asyncpg URL for its async engine.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": metadata_url,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata_url}",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
    }

    def environment() -> dict[str, str]:
        return {**child_environment(settings), **executor, "PYTHONPATH": str(REPO_ROOT)}

    return Stack(services=(*services, worker), jobs=(), environment=environment)


def migrate_metadata_database(metadata_url: str, airflow_home: Path) -> None:
    """`airflow db migrate` on the database, once: stacks started on it after skip the migration."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": metadata_url,
    }
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )


@contextmanager
def running_celery_airflow(
    settings: Settings, broker_url: str, metadata_url: str, start_timeout: float = 240.0
) -> Iterator[CeleryAirflow]:
    """Start the stack on a migrated metadata database, with a queue and worker name of its own; stop
    every process and delete the queue afterwards.

    The queue is named after the metadata database, not drawn at random: a task's queue is baked into
    the serialized DAG, and a second stack on the same database may schedule a run from the DAG the
    first one serialized before its own dag-processor re-parses it. A random name per stack sent that
    run's task to a queue no worker consumed.
    """
    suffix = hashlib.blake2b(metadata_url.encode(), digest_size=3).hexdigest()
    queue, worker_name = f"ancora-test-{suffix}", f"celery-worker-{suffix}"
    stack = celery_stack(settings, metadata_url, broker_url, queue, worker_name)
    supervisor = Supervisor(stack, settings.run_dir, settings.log_dir, settings.state_dir)
    try:
        supervisor.up(start_timeout)
        yield CeleryAirflow(settings, supervisor, metadata_url, queue, worker_name)
    finally:
        supervisor.down(settings.stack_stop_timeout_seconds)
        delete_queue(broker_url, queue)


def delete_queue(broker_url: str, queue: str) -> None:
    """The queue and Celery's exchange of the same name; on Redis also kombu's binding keys."""
    with kombu.Connection(broker_url) as broker:
        broker.default_channel.queue_delete(queue)
        broker.default_channel.exchange_delete(queue)
    if broker_url.startswith("redis://"):
        client = redis.Redis.from_url(broker_url)
        try:
            for key in client.scan_iter(match=f"*{queue}*"):
                client.delete(key)
        finally:
            client.close()


def waiting_messages(broker_url: str, queue: str) -> int:
    """Messages still waiting in ``queue`` on the broker (Redis list or RabbitMQ queue alike)."""
    with kombu.Connection(broker_url) as broker:
        try:
            return int(broker.default_channel.queue_declare(queue=queue, passive=True).message_count)
        except ChannelError:
            # Redis keeps a queue as a list and deletes the list once it is empty; RabbitMQ keeps
            # the queue the worker declared, so there a missing queue is a real error.
            if broker.transport.driver_type == "redis":
                return 0
            raise
