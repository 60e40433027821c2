"""Typed dependencies of the provisioning API: the provisioner, and the bearer scheme for OpenAPI."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from ancora.sagemaker.provisioning import Provisioner

bearer = HTTPBearer(
    auto_error=False,
    description="ANCORA_PROVISIONING_TOKEN, or ANCORA_PROVISIONING_READ_TOKEN for /pipelinestatus and "
    "/inference. Checked by ancora_provisioning.gate before the body is read.",
)
Documented = Depends(bearer)
"""Lists the bearer scheme on a route in OpenAPI; the gate, not this, decides (before the body is read)."""


async def get_provisioner(request: Request) -> Provisioner:
    provisioner: Provisioner = request.app.state.provisioner
    return provisioner


ProvisionerDep = Annotated[Provisioner, Depends(get_provisioner)]
