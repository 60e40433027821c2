"""Who may call what, decided from the headers alone, before a byte of the body is read.

FastAPI reads and parses a JSON body before it runs a route's dependencies, so a check written as a
dependency would let anyone make the service read (and hold) a large body. This ASGI middleware
answers 401/403/503 from the ``Authorization`` header, and 413 from ``Content-Length`` or from the
bytes actually received, before the route sees the request.

Access levels (docs/security.md):
- open: ``/health`` and the OpenAPI pages;
- read: ``/pipelinestatus`` and ``/inference``, with ``ANCORA_PROVISIONING_READ_TOKEN`` or the
  provisioning token;
- provision: everything else (``/provisionpipeline``, ``/deletepipeline`` and any route added later),
  with ``ANCORA_PROVISIONING_TOKEN`` only. A path nobody listed is closed, not open.
"""

from __future__ import annotations

import json
import secrets
from enum import StrEnum

from fastapi import HTTPException, status
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ancora.config import Settings


class Access(StrEnum):
    OPEN = "open"
    READ = "read"
    PROVISION = "provision"


OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
READ_PATHS = frozenset({"/pipelinestatus", "/inference"})

MAX_INFERENCE_BODY_BYTES = 8 * 1024 * 1024
"""SageMaker takes at most 6 MB per invocation; JSON escaping of a CSV payload adds a little."""
MAX_BODY_BYTES = 64 * 1024
"""Every other body is a few keys of JSON."""


def required_access(path: str) -> Access:
    if path in OPEN_PATHS:
        return Access.OPEN
    if path in READ_PATHS:
        return Access.READ
    return Access.PROVISION


def body_limit(path: str) -> int:
    return MAX_INFERENCE_BODY_BYTES if path == "/inference" else MAX_BODY_BYTES


def _matches(presented: bytes, token: SecretStr | None) -> bool:
    return token is not None and secrets.compare_digest(presented, token.get_secret_value().encode())


def refusal(settings: Settings, access: Access, authorization: bytes | None) -> tuple[int, str] | None:
    """Why a request with this ``Authorization`` header may not pass, or None when it may.

    Both tokens are always compared (constant time each), so the answer's timing does not tell which
    token a guess came close to."""
    if access == Access.OPEN:
        return None
    provision_token, read_token = settings.provisioning_token, settings.provisioning_read_token
    if provision_token is None and (access == Access.PROVISION or read_token is None):
        return (
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "provisioning is closed: no token is configured (ANCORA_PROVISIONING_TOKEN)",
        )
    scheme, _, presented = (authorization or b"").partition(b" ")
    presented = presented.strip() if scheme.lower() == b"bearer" else b""
    is_provisioner = _matches(presented, provision_token)
    is_reader = _matches(presented, read_token)
    if not (is_provisioner or is_reader):
        return status.HTTP_401_UNAUTHORIZED, "a valid bearer token is required"
    if access == Access.PROVISION and not is_provisioner:
        return (
            status.HTTP_403_FORBIDDEN,
            "the read token may not provision or delete (ANCORA_PROVISIONING_TOKEN)",
        )
    return None


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status.HTTP_413_CONTENT_TOO_LARGE, detail=f"the body is larger than {limit} bytes")


class ProvisioningGate:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        path = scope["path"]
        refused = refusal(self.settings, required_access(path), headers.get(b"authorization"))
        if refused is not None:
            code, detail = refused
            extra = [(b"www-authenticate", b"Bearer")] if code == status.HTTP_401_UNAUTHORIZED else []
            await _answer(send, code, detail, extra)
            return
        limit = body_limit(path)
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _answer(send, status.HTTP_400_BAD_REQUEST, "Content-Length is not a number")
                return
            if int(declared) > limit:
                await _answer(
                    send, status.HTTP_413_CONTENT_TOO_LARGE, f"the body is larger than {limit} bytes"
                )
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


async def _answer(send: Send, code: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": code, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})
