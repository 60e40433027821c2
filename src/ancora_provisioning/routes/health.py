"""Liveness for the launcher and compose healthchecks."""

from __future__ import annotations

from fastapi import APIRouter

from ancora_provisioning.dependencies import ProvisionerDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(provisioner: ProvisionerDep) -> dict[str, str]:
    return {"status": "ok", "target": provisioner.target.name}
