"""App factory of the BYOM provisioning API (its own service, port ANCORA_PROVISIONING_PORT)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from ancora.config import Settings, get_settings
from ancora.sagemaker.provisioning import Provisioner
from ancora_provisioning.gate import ProvisioningGate
from ancora_provisioning.routes import health, pipelines

DESCRIPTION = """
Bring-your-own-model pipelines with the request bodies of the AWS MLOps Workload Orchestrator
(`/provisionpipeline`, `/pipelinestatus`, `/inference`), and their teardown (`/deletepipeline`).
Deploys to this machine (`local`) or to SageMaker, as `ANCORA_BYOM_TARGET` says. Provisioning and
deleting need `ANCORA_PROVISIONING_TOKEN`; status and inference take `ANCORA_PROVISIONING_READ_TOKEN`
too. See docs/sagemaker.md and docs/security.md.
"""


def create_app(settings: Settings | None = None, provisioner: Provisioner | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        active = provisioner or Provisioner(settings)
        app.state.provisioner = active
        await run_in_threadpool(active.start)
        try:
            yield
        finally:
            await run_in_threadpool(active.close)

    app = FastAPI(title="Ancora BYOM provisioning", description=DESCRIPTION, version="1", lifespan=lifespan)
    for router in (pipelines.router, health.router):
        app.include_router(router)
    app.add_middleware(ProvisioningGate, settings=settings)
    return app
