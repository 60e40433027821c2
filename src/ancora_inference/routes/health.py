"""Liveness and readiness: alive as soon as the process answers, ready once a model is loaded."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from ancora_inference.dependencies import RuntimeDep
from ancora_inference.schemas import ErrorMessage, Health, Ready

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness", response_model=Health)
async def health() -> Health:
    """The process answers; says nothing about the model (see /ready)."""
    return Health(status="ok")


@router.get(
    "/ready",
    summary="Readiness",
    response_model=Ready,
    responses={503: {"model": ErrorMessage, "description": "No model loaded yet, and why."}},
)
async def ready(runtime: RuntimeDep) -> Ready:
    """200 once a model is loaded; a failed later check still answers 200 and names the failure."""
    model = runtime.watcher.current
    if model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=runtime.not_ready_reason())
    last = runtime.watcher.last_check
    return Ready(
        status="ready",
        model_version=model.ref.version,
        last_check_error=last.error if last is not None else None,
    )
