"""Bounds on what a request may send: the size of its body per route, and the time to send it.

A pure ASGI layer around both ``/predict`` paths (the fast path reads the body itself, before any
route): a declared ``Content-Length`` over the route's cap is refused before a byte of the body is
read, an undeclared (chunked) body as soon as it passes the cap, and a body still incomplete when the
timeout expires (a slowloris upload) is answered 408. Either answer closes the connection, so the
rest of an oversized upload is not read either.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is larger than {limit} bytes")


class BodyTooSlow(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"the body did not arrive within {seconds:g} seconds")


class BodyLimits:
    """Caps each request body at ``max_bytes[path]`` (``default_max_bytes`` elsewhere) and its
    arrival at ``timeout_seconds`` from the end of the headers."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: Mapping[str, int],
        default_max_bytes: int,
        timeout_seconds: float,
    ) -> None:
        self.app = app
        self.max_bytes = dict(max_bytes)
        self.default_max_bytes = default_max_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes.get(scope["path"], self.default_max_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await refuse(send, 413, str(BodyTooLarge(limit)))
            return
        deadline = asyncio.get_running_loop().time() + self.timeout_seconds
        received = 0
        complete = False
        started = False

        async def bounded_receive() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow(self.timeout_seconds) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                complete = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except (BodyTooLarge, BodyTooSlow) as error:
            if started:
                raise
            await refuse(send, 413 if isinstance(error, BodyTooLarge) else 408, str(error))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
