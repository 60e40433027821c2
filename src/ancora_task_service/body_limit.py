"""Request bodies: a cap for every endpoint that takes no upload, and no reading of refused ones.

FastAPI reads a JSON body whole into memory before the handler runs; without a cap, a login with a
gigabyte of JSON would be read to the end. This ASGI middleware answers 413 on a declared
``Content-Length`` over the cap without reading anything, and counts the bytes of bodies sent
without one (chunked), stopping at the first byte over. The submission route, which streams its own
bounded upload (ancora_task_service/uploads.py), is not capped here.

For every route: an answer given before the request's body was read to its end (a 401 to an upload
without a token, a 413) says ``Connection: close``, so the server closes the connection instead of
reading and discarding the rest of an 80 MB body to keep the connection alive.
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
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
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
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        capped = not self.exempt(scope)
        if declared is not None and not declared.isdigit():
            await _answer(send, 400, "Content-Length is not a number")
            return
        if capped and declared is not None and int(declared) > self.max_bytes:
            await _answer(send, 413, f"the body may not be larger than {self.max_bytes} bytes")
            return
        expects_body = b"transfer-encoding" in headers or (declared is not None and int(declared) > 0)
        received = 0
        body_read = not expects_body
        started = False

        async def counted_receive() -> Message:
            nonlocal received, body_read
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if capped and received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
                body_read = body_read or not message.get("more_body", False)
            return message

        async def closing_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if not body_read:
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, counted_receive, closing_send)
        except BodyTooLarge:
            if not started:
                await _answer(send, 413, f"the body may not be larger than {self.max_bytes} bytes")
