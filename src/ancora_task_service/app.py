"""The task service's app factory: one app per settings object, routers mounted in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Scope

from ancora.config import Settings, get_settings
from ancora.remote.login_limits import LoginLimits
from ancora.remote.service import TaskService
from ancora_task_service.body_limit import BodyLimit
from ancora_task_service.routes import auth, health, tasks

DESCRIPTION = """
Runs heavy jobs away from the Airflow machine: on a Slurm cluster over SSH (`hpc`), on SageMaker,
or, for admins where the operator enabled it, as a process on this host (`local`), chosen by
`runner_location`. The server behind the `biganchoring_ml_module` / `ancora_client` library: log
in, submit a dataset zip and a processor zip with a command, follow the job, read its MLflow run id
(from the moment it is accepted) and logs, cancel it. See docs/remote.md.
"""


def is_upload(scope: Scope) -> bool:
    """The submission route streams and bounds its own body (ancora_task_service/uploads.py)."""
    return bool(scope.get("method") == "POST" and scope.get("path", "").rstrip("/") == "/tasks")


def create_app(settings: Settings | None = None, service: TaskService | None = None) -> FastAPI:
    settings = settings or get_settings()
    service = service or TaskService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.resume()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(title="Ancora task service", version="1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.service = service
    app.state.login_limits = LoginLimits(
        max_failures=settings.remote_login_max_failures,
        max_failures_per_address=settings.remote_login_max_failures_per_address,
        window_seconds=settings.remote_login_window_seconds,
    )
    app.add_middleware(BodyLimit, exempt=is_upload)
    for router in (auth.router, tasks.router, health.router):
        app.include_router(router)
    return app
