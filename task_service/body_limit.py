"""A cap on request bodies for every endpoint that takes no upload (login, cancel, ...).

FastAPI reads a JSON body whole into memory before the handler runs; without a cap, a login with a
gigabyte of JSON would be read to the end. This ASGI middleware answers 413 on a declared
``Content-Length`` over the cap without reading anything, and counts the bytes of bodies sent
without one (chunked), stopping at the first byte over. The submission route, which streams its own
bounded upload (task_service/uploads.py), is let through.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BYTES = 64 * 1024


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: FastAPI lets an HTTPException from a body read through as it is."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the body may not be larger than {max_bytes} bytes")


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    def __init__(
        self, app: ASGIApp, exempt: Callable[[Scope], bool], max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.app = app
        self.exempt = exempt
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _answer(send, 400, "Content-Length is not a number")
                return
            if int(declared) > self.max_bytes:
                await _answer(send, 413, f"the body may not be larger than {self.max_bytes} bytes")
                return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await _answer(send, 413, f"the body may not be larger than {self.max_bytes} bytes")
