"""The native stack as data: which programs run, in what order, and how each proves it is healthy.

Adding a service (inference API, task service, Streamlit) is one more entry in ``native_stack``; the
supervisor knows nothing about individual programs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic_core import to_jsonable_python

from ancora.airflow_env import airflow_environment, passwords_file
from ancora.config import Settings

HealthPredicate = Callable[[httpx.Response], bool]


def ok_status(response: httpx.Response) -> bool:
    return response.status_code == 200


def airflow_component_healthy(component: str) -> HealthPredicate:
    """Scheduler, dag-processor and triggerer serve no HTTP of their own: the API server reports
    their heartbeats in its monitor endpoint, so their health is read there."""

    def check(response: httpx.Response) -> bool:
        if response.status_code != 200:
            return False
        status = response.json().get(component) or {}
        return bool(status.get("status") == "healthy")

    return check


@dataclass(frozen=True)
class HealthCheck:
    url: str
    healthy: HealthPredicate = ok_status


@dataclass(frozen=True)
class Job:
    """A one-shot step (like compose's ``airflow-init``) that must succeed before some services start."""

    name: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Service:
    name: str
    argv: tuple[str, ...]
    health: HealthCheck
    url: str | None = None
    """What a person opens in a browser; None for background processes."""
    needs: tuple[str, ...] = ()
    """Jobs that must have succeeded before this service starts."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables only this service needs, laid over the stack's environment."""


@dataclass(frozen=True)
class Stack:
    services: tuple[Service, ...]
    jobs: tuple[Job, ...]
    environment: Callable[[], Mapping[str, str]]
    """Built only when something starts: it creates Airflow's home and secrets, which `status`
    and `down` must not."""
    notes: tuple[str, ...] = field(default=())
    """Lines printed after a successful start (where the admin password is, for example)."""


def _env_value(value: object) -> str:
    """A setting as its variable spells it, so the child parses back the same value."""
    if hasattr(value, "get_secret_value"):
        return str(value.get_secret_value())
    if isinstance(value, str | Path | int | float | bool):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ",".join(value)  # the comma-separated roots
    return json.dumps(to_jsonable_python(value))


def ancora_environment(settings: Settings) -> dict[str, str]:
    """Every setting, resolved, as ``ANCORA_*`` variables.

    Children then agree with the launcher whatever their working directory or ``.env``: the state
    folder is absolute, the stores are the launcher's, and DAG tasks talk to the simulator the stack
    runs unless ``ANCORA_DATA_API_URL`` was set on purpose (the course's real API, for example).
    """
    environment = {
        f"ANCORA_{name.upper()}": _env_value(value)
        for name, value in settings
        if value is not None and name in type(settings).model_fields
    }
    if "data_api_url" not in settings.model_fields_set:
        environment["ANCORA_DATA_API_URL"] = settings.simulator_url
    return environment


def child_environment(settings: Settings) -> dict[str, str]:
    """The launcher's own environment with Ancora's and Airflow's settings laid over it."""
    return {**os.environ, **ancora_environment(settings), **airflow_environment(settings)}


def native_stack(settings: Settings) -> Stack:
    """The services `make up` runs, every one on ``settings.bind_host``."""
    python = sys.executable
    airflow = (python, "-m", "airflow")
    airflow_health = f"{settings.airflow_api_url}/api/v2/monitor/health"
    after_migration = ("airflow-db-migrate",)
    mlflow_url = f"http://{settings.bind_host}:{settings.mlflow_port}"

    mlflow = [
        python, "-m", "mlflow", "server",
        "--backend-store-uri", settings.mlflow_backend_store_uri,
        "--artifacts-destination", settings.mlflow_artifacts_destination,
        "--serve-artifacts",
        "--host", settings.bind_host,
        "--port", str(settings.mlflow_port),
        "--workers", "1",
    ]  # fmt: skip
    if settings.mlflow_allowed_hosts:
        mlflow += ["--allowed-hosts", settings.mlflow_allowed_hosts]

    services = (
        Service(
            name="data-api",
            argv=(python, "-m", "ancora", "data-api"),
            health=HealthCheck(f"{settings.simulator_url}/health"),
            url=settings.simulator_url,
        ),
        Service(
            name="mlflow",
            argv=tuple(mlflow),
            health=HealthCheck(f"{mlflow_url}/health"),
            url=mlflow_url,
            # The job runner serves GenAI features (prompt optimisation, trace roll-ups) this stack
            # does not use; it would add a huey consumer process and slow the cold start.
            env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        ),
        Service(
            name="airflow-api-server",
            argv=(*airflow, "api-server"),
            health=HealthCheck(airflow_health, airflow_component_healthy("metadatabase")),
            url=settings.airflow_api_url,
            needs=after_migration,
        ),
        Service(
            name="airflow-scheduler",
            argv=(*airflow, "scheduler", "--skip-serve-logs"),
            health=HealthCheck(airflow_health, airflow_component_healthy("scheduler")),
            needs=after_migration,
        ),
        Service(
            name="airflow-dag-processor",
            argv=(*airflow, "dag-processor"),
            health=HealthCheck(airflow_health, airflow_component_healthy("dag_processor")),
            needs=after_migration,
        ),
        Service(
            name="airflow-triggerer",
            argv=(*airflow, "triggerer", "--skip-serve-logs"),
            health=HealthCheck(airflow_health, airflow_component_healthy("triggerer")),
            needs=after_migration,
        ),
        Service(
            name="inference",
            argv=(python, "-m", "ancora", "serve"),
            # Liveness, not readiness: with no champion yet the service is up and says so on /ready.
            health=HealthCheck(f"{settings.inference_url}/health"),
            url=settings.inference_url,
        ),
        Service(
            name="task-service",
            argv=(python, "-m", "ancora", "task-service"),
            health=HealthCheck(f"http://{settings.bind_host}:{settings.task_service_port}/health"),
            url=f"http://{settings.bind_host}:{settings.task_service_port}",
        ),
        Service(
            name="ui",
            argv=(python, "-m", "ancora", "ui"),
            health=HealthCheck(f"{settings.ui_url}/_stcore/health"),
            url=settings.ui_url,
        ),
    )
    return Stack(
        services=services,
        jobs=(Job("airflow-db-migrate", (*airflow, "db", "migrate")),),
        environment=lambda: child_environment(settings),
        notes=(
            f"Airflow login: user 'admin', password in {passwords_file(settings)}",
            f"Streamlit app users: {settings.ui_users_file} "
            "(first admin: `uv run ancora users add --role Admin <name>`)",
        ),
    )
