"""Liveness for the launcher and compose health checks."""

from __future__ import annotations

from fastapi import APIRouter

from ancora_task_service.dependencies import ServiceDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(service: ServiceDep) -> dict[str, str]:
    return {"status": "ok", "executor": service.settings.remote_executor}
