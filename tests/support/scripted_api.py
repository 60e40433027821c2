"""A real HTTP server on loopback that answers what a test scripts: the faults a data API can show."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


@dataclass
class Scripted:
    status: int = 200
    body: object = None
    text: str | None = None
    delay: float = 0.0


@dataclass
class ScriptedApi:
    url: str
    answers: list[Scripted] = field(default_factory=list)
    requests: list[dict[str, list[str]]] = field(default_factory=list)

    def answer(self, *answers: Scripted) -> None:
        self.answers[:] = list(answers)


@contextmanager
def scripted_api() -> Iterator[ScriptedApi]:
    api = ScriptedApi(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urlparse(self.path)
            api.requests.append({"path": [parsed.path], **parse_qs(parsed.query)})
            scripted = api.answers.pop(0) if len(api.answers) > 1 else api.answers[0]
            if scripted.delay:
                time.sleep(scripted.delay)
            payload = (
                scripted.text.encode() if scripted.text is not None else json.dumps(scripted.body).encode()
            )
            self.send_response(scripted.status)
            self.send_header(
                "Content-Type", "text/plain" if scripted.text is not None else "application/json"
            )
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
