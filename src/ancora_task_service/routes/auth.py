"""Login: a username and password for a signed token that expires; failed logins are rate-limited."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from ancora.remote.auth import NotAuthenticated, authenticate, issue_token
from ancora.remote.login_limits import TooManyFailures
from ancora_task_service.dependencies import LoginLimitsDep, ServiceDep
from ancora_task_service.schemas import Login, Token

router = APIRouter(tags=["auth"])
log = logging.getLogger(__name__)


@router.post(
    "/login",
    response_model=Token,
    responses={
        401: {"description": "Wrong username or password."},
        429: {"description": "Too many failed logins for this username or address; see Retry-After."},
    },
)
async def login(body: Login, request: Request, service: ServiceDep, limits: LoginLimitsDep) -> Token:
    address = request.client.host if request.client else "unknown"
    try:
        limits.check(body.username, address)
    except TooManyFailures as problem:
        log.warning("login of %r from %s refused: %s", body.username, address, problem)
        raise HTTPException(
            429, str(problem), headers={"Retry-After": str(problem.retry_after_seconds)}
        ) from problem
    try:
        user = await run_in_threadpool(authenticate, service.store, body.username, body.password)
    except NotAuthenticated as problem:
        limits.failed(body.username, address)
        log.info("refused login of %r from %s", body.username, address)
        raise HTTPException(401, str(problem), headers={"WWW-Authenticate": "Bearer"}) from problem
    limits.succeeded(body.username)
    token, lifetime = issue_token(service.settings, user)
    return Token(access_token=token, expires_in=lifetime, username=user.username, is_admin=user.is_admin)
