"""Login: a username and password for a signed token that expires."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException

from ancora.remote.auth import NotAuthenticated, authenticate, issue_token
from task_service.dependencies import ServiceDep
from task_service.schemas import Login, Token

router = APIRouter(tags=["auth"])
log = logging.getLogger(__name__)


@router.post("/login", response_model=Token)
def login(body: Login, service: ServiceDep) -> Token:
    try:
        user = authenticate(service.store, body.username, body.password)
    except NotAuthenticated as problem:
        log.info("refused login of %r", body.username)
        raise HTTPException(401, str(problem), headers={"WWW-Authenticate": "Bearer"}) from problem
    token, lifetime = issue_token(service.settings, user)
    return Token(access_token=token, expires_in=lifetime, username=user.username, is_admin=user.is_admin)
