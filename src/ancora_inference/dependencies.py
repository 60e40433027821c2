"""Typed dependencies, so handlers say what they need and stay short.

All are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, a hop the hot path
cannot afford.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ancora.serving.registry import ServedModel
from ancora_inference.runtime import ServingRuntime

bearer = HTTPBearer(auto_error=False, description="The admin token (ANCORA_ADMIN_TOKEN).")


async def get_runtime(request: Request) -> ServingRuntime:
    runtime: ServingRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[ServingRuntime, Depends(get_runtime)]


async def get_served_model(runtime: RuntimeDep) -> ServedModel:
    """The model this request will use from start to end, even if a swap happens meanwhile."""
    model = runtime.watcher.current
    if model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=runtime.not_ready_reason())
    return model


ServedModelDep = Annotated[ServedModel, Depends(get_served_model)]


async def require_admin(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Without a configured token the admin endpoints are closed, never open."""
    token = runtime.settings.admin_token
    if token is None or not token.get_secret_value():
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="admin endpoints are disabled: no admin token is configured (ANCORA_ADMIN_TOKEN)",
        )
    if credentials is None or not secrets.compare_digest(
        credentials.credentials.encode(), token.get_secret_value().encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="a valid admin bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


AdminDep = Depends(require_admin)
