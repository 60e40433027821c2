"""Typed dependencies, so handlers state what they need in their signature and stay short."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ancora.remote.auth import NotAuthenticated, read_token
from ancora.remote.login_limits import LoginLimits
from ancora.remote.service import TaskService
from ancora.remote.store import User

bearer = HTTPBearer(auto_error=False, description="The access_token from POST /login.")


def get_service(request: Request) -> TaskService:
    service: TaskService = request.app.state.service
    return service


ServiceDep = Annotated[TaskService, Depends(get_service)]


def get_login_limits(request: Request) -> LoginLimits:
    limits: LoginLimits = request.app.state.login_limits
    return limits


LoginLimitsDep = Annotated[LoginLimits, Depends(get_login_limits)]


def current_user(
    service: ServiceDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> User:
    if credentials is None:
        raise HTTPException(401, "log in first: POST /login", headers={"WWW-Authenticate": "Bearer"})
    try:
        return read_token(service.settings, service.store, credentials.credentials)
    except NotAuthenticated as problem:
        raise HTTPException(401, str(problem), headers={"WWW-Authenticate": "Bearer"}) from problem


UserDep = Annotated[User, Depends(current_user)]
