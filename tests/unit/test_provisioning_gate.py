"""The provisioning API's gate and tokens: refused requests are answered before the body is read."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from starlette.types import Message, Receive, Scope, Send

from ancora.config import Settings
from ancora_provisioning.app import create_app
from ancora_provisioning.gate import MAX_BODY_BYTES, MAX_INFERENCE_BODY_BYTES, BodyTooLarge, ProvisioningGate
from tests.support.sagemaker import PROVISIONING_TOKEN, READ_TOKEN

SETTINGS = Settings(provisioning_token=PROVISIONING_TOKEN, provisioning_read_token=READ_TOKEN)


def http_scope(path: str, headers: dict[str, str]) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8003),
    }


class Call:
    """One request through an ASGI app, with a body that fails the test if anything reads it."""

    def __init__(self, readable: bool = False, chunks: list[bytes] | None = None) -> None:
        self.readable = readable
        self.chunks = list(chunks or [b"{}"])
        self.reads = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        self.reads += 1
        if not self.readable:
            raise AssertionError("the body was read before the request was authorized")
        body = self.chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(self.chunks)}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    def run(self, app: Any, path: str, headers: dict[str, str]) -> Call:
        asyncio.run(app(http_scope(path, headers), self.receive, self.send))
        return self

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


HUGE = {"Content-Length": str(10**9), "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/provisionpipeline", {}, 401),
        ("/provisionpipeline", bearer("guess" * 10), 401),
        ("/provisionpipeline", {"Authorization": f"Basic {PROVISIONING_TOKEN}"}, 401),
        ("/provisionpipeline", bearer(READ_TOKEN), 403),
        ("/deletepipeline", bearer(READ_TOKEN), 403),
        ("/pipelinestatus", {}, 401),
        ("/inference", bearer(PROVISIONING_TOKEN[:-1]), 401),
        ("/a-route-added-later", bearer(READ_TOKEN), 403),
        ("/provisionpipeline", bearer(PROVISIONING_TOKEN), 413),
        ("/inference", bearer(READ_TOKEN), 413),
    ],
)
def test_the_real_app_refuses_before_it_reads_a_body(path: str, headers: dict[str, str], status: int) -> None:
    """A gigabyte announced, nothing sent: a refusal comes at once, and the body is never touched."""
    call = Call().run(create_app(SETTINGS), path, {**HUGE, **headers})
    assert call.status == status
    assert call.reads == 0


def test_without_tokens_everything_but_health_is_closed() -> None:
    closed = Settings()
    for path in ("/provisionpipeline", "/pipelinestatus", "/inference", "/deletepipeline"):
        call = Call().run(create_app(closed), path, {**HUGE, **bearer(PROVISIONING_TOKEN)})
        assert call.status == 503 and b"ANCORA_PROVISIONING_TOKEN" in call.sent[1]["body"]


async def echo_body(scope: Scope, receive: Receive, send: Send) -> None:
    """Stands behind the gate: reads the whole body and answers with its length."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def test_an_authorized_request_reaches_the_route_with_its_body() -> None:
    gate = ProvisioningGate(echo_body, SETTINGS)
    for token, path in ((PROVISIONING_TOKEN, "/provisionpipeline"), (READ_TOKEN, "/pipelinestatus")):
        call = Call(readable=True, chunks=[b"ab", b"cd"]).run(gate, path, bearer(token))
        assert call.status == 200 and call.sent[1]["body"] == b"4"


def test_a_body_without_length_is_cut_at_the_limit() -> None:
    """Chunked (no Content-Length): counted as it arrives; the gate stops it past the limit."""
    gate = ProvisioningGate(echo_body, SETTINGS)
    chunks = [b"x" * 1024] * (MAX_BODY_BYTES // 1024 + 2)
    with pytest.raises(BodyTooLarge, match="larger than 65536 bytes"):
        Call(readable=True, chunks=chunks).run(gate, "/pipelinestatus", bearer(READ_TOKEN))
    fits = [b"x" * 1024] * (MAX_INFERENCE_BODY_BYTES // 1024)
    call = Call(readable=True, chunks=fits).run(gate, "/inference", bearer(READ_TOKEN))
    assert call.status == 200 and call.sent[1]["body"] == str(MAX_INFERENCE_BODY_BYTES).encode()


def test_short_tokens_are_refused_at_start_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="ANCORA_PROVISIONING_TOKEN has 12 characters; use at least 32"):
        Settings(provisioning_token="short-secret")
    monkeypatch.setenv("ANCORA_PROVISIONING_READ_TOKEN", "x" * 31)
    with pytest.raises(ValidationError, match="ANCORA_PROVISIONING_READ_TOKEN has 31 characters"):
        Settings()
    monkeypatch.setenv("ANCORA_PROVISIONING_READ_TOKEN", "")
    assert Settings().provisioning_read_token is None, "empty means unset (compose passes '')"


def test_one_token_cannot_serve_two_roles() -> None:
    with pytest.raises(ValidationError, match="PROVISIONING_TOKEN must differ from ANCORA_ADMIN_TOKEN"):
        Settings(admin_token=SecretStr(PROVISIONING_TOKEN), provisioning_token=PROVISIONING_TOKEN)
    with pytest.raises(ValidationError, match="READ_TOKEN must differ from ANCORA_PROVISIONING_TOKEN"):
        Settings(provisioning_token=PROVISIONING_TOKEN, provisioning_read_token=PROVISIONING_TOKEN)


def test_the_service_will_not_start_with_a_short_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCORA_PROVISIONING_TOKEN", "changeme")
    result = subprocess.run(
        [sys.executable, "-m", "ancora", "provisioning", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "\nANCORA_PROVISIONING_TOKEN has 8 characters; use at least 32" in result.stderr
