"""Typed dependencies of the provisioning API: the provisioner and the admin check."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ancora.sagemaker.provisioning import Provisioner

bearer = HTTPBearer(auto_error=False, description="The admin token (ANCORA_ADMIN_TOKEN).")


async def get_provisioner(request: Request) -> Provisioner:
    provisioner: Provisioner = request.app.state.provisioner
    return provisioner


ProvisionerDep = Annotated[Provisioner, Depends(get_provisioner)]


async def require_admin(
    provisioner: ProvisionerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Deploying runs a pickle from the artifact: without a configured token nobody may do it."""
    token = provisioner.settings.admin_token
    if token is None or not token.get_secret_value():
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="provisioning is disabled: no admin token is configured (ANCORA_ADMIN_TOKEN)",
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
