"""Uvicorn with the limits its HTTP/1.1 protocol lacks: the size and the time of a request's head.

Uvicorn's httptools protocol keeps every header line it is sent (50 MB of headers were accepted and
answered 200) and waits for a request's head without a deadline, so a client that opens connections
and sends nothing, or a byte now and then (slowloris), holds them for ever. Here a request's line and
headers must fit in ``MAX_HEADER_BYTES`` (else 431 and the connection is closed) and arrive within
the header timeout (else the connection is closed, with a 408 if part of a request came); the whole
message, body included, must arrive within the header and body timeouts together, so a body nobody
reads cannot be trickled for ever either. The app itself answers a body that arrives too slowly with a
408 (``inference.limits``), before this backstop closes the connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

MAX_HEADER_BYTES = 64 * 1024
"""Request line and headers together; nginx allows 32 KiB by default, Node.js 16 KiB."""


class HeadersTooLarge(Exception):
    """Raised from a parser callback to stop reading a request head past ``MAX_HEADER_BYTES``."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol with a bounded request head and deadlines for the head and body."""

    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    max_header_bytes: int = MAX_HEADER_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._reading_head = False
        self._headers_too_large = False
        self._deadline_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._reading_head = True
        self._arm(self.header_timeout_seconds)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._arm(self.body_timeout_seconds + self.header_timeout_seconds)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._headers_too_large:
            self._send_and_close(431, f"The request line and headers exceed {self.max_header_bytes} bytes.")
        else:
            super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_header_bytes:
            self._headers_too_large = True
            raise HeadersTooLarge  # httptools turns it into a parser error: uvicorn calls send_400_response

    def _arm(self, seconds: float) -> None:
        """Set the deadline. One timer per connection, moved only when the deadline comes before it,
        instead of two timers made and cancelled per request on the busy event loop; a timer that
        fires before the deadline sets itself again for the rest."""
        deadline = self.loop.time() + seconds
        self._deadline_at = deadline
        if self._timer is None or self._timer_at > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._schedule(deadline)

    def _disarm(self) -> None:
        self._deadline_at = None

    def _schedule(self, deadline: float) -> None:
        self._timer = self.loop.call_at(deadline, self._expired)
        self._timer_at = deadline

    def _expired(self) -> None:
        self._timer = None
        deadline = self._deadline_at
        if deadline is None:
            return
        if deadline > self.loop.time():
            self._schedule(deadline)
            return
        self._deadline_at = None
        if self.transport.is_closing():
            return
        if self._reading_head:
            self._send_and_close(408, "The request did not arrive in time.")
        else:
            self.transport.close()

    def _send_and_close(self, status: int, message: str) -> None:
        body = message.encode("ascii")
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(head))
        self.transport.close()


def bounded_protocol(header_timeout_seconds: float, body_timeout_seconds: float) -> type[HttpToolsProtocol]:
    """The protocol class with these deadlines, as uvicorn's ``http`` option takes it."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"header_timeout_seconds": header_timeout_seconds, "body_timeout_seconds": body_timeout_seconds},
    )


def use_deadlines(header_timeout_seconds: float, body_timeout_seconds: float) -> None:
    """Set the deadlines of ``BoundedHttpToolsProtocol`` itself, for worker processes: uvicorn sends
    them the protocol by its import path, so the class made by ``bounded_protocol`` cannot travel."""
    BoundedHttpToolsProtocol.header_timeout_seconds = header_timeout_seconds
    BoundedHttpToolsProtocol.body_timeout_seconds = body_timeout_seconds


def run_workers(app_factory: str, host: str, port: int, workers: int, **options: Any) -> None:
    """``uvicorn.run`` with ``workers`` processes on one socket, each building its app with
    ``app_factory`` ("module:function"), which calls ``use_deadlines`` with its settings."""
    uvicorn.run(
        app_factory,
        factory=True,
        workers=workers,
        host=host,
        port=port,
        http=f"{__name__}:{BoundedHttpToolsProtocol.__name__}",
        **options,
    )


def run(
    app: Any,
    host: str,
    port: int,
    header_timeout_seconds: float,
    body_timeout_seconds: float,
    **options: Any,
) -> None:
    """``uvicorn.run`` with the bounded protocol."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=bounded_protocol(header_timeout_seconds, body_timeout_seconds),
        **options,
    )
