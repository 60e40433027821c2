"""The real inference app behind the real HTTP server (uvicorn with ``ancora.http_server``'s protocol)
in a thread, with a fitted pipeline as the served model: attacks reach it over loopback sockets
without a registry. The registry checks fail against a closed port and keep the model serving, as
they do in production."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from ancora.config import Settings
from ancora.http_server import bounded_protocol
from ancora.serving.registry import ServedModel, VersionRef
from ancora_inference.app import create_app
from tests.support.simulator import free_port

CLOSED_REGISTRY = "http://127.0.0.1:9"


def app_serving(pipeline: Any, state_dir: Path, **settings: Any) -> FastAPI:
    """The inference app with ``pipeline`` as version 4 of covertype@champion."""
    app = create_app(
        Settings(
            state_dir=state_dir,
            mlflow_tracking_uri=CLOSED_REGISTRY,
            serving_predict_worker=False,
            model_poll_interval_seconds=300,
            registry_timeout_seconds=1,
            registry_max_retries=0,
            **settings,
        )
    )
    app.state.runtime.watcher._current = ServedModel(
        ref=VersionRef("covertype", "champion", "4", "run-4", "models:/m-4"),
        estimator=pipeline,
        classes=tuple(int(label) for label in pipeline.classes_),
        registry_uri=CLOSED_REGISTRY,
        loaded_at=datetime.now(UTC),
        path=state_dir,
    )
    return app


@contextmanager
def serving_in_thread(app: FastAPI) -> Iterator[tuple[str, int]]:
    """Serve ``app`` on a free loopback port with the timeouts of its settings; yields (url, port)."""
    settings: Settings = app.state.runtime.settings
    protocol = bounded_protocol(
        settings.inference_header_timeout_seconds, settings.inference_body_timeout_seconds
    )
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=protocol,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the server thread exited"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout`` passes)."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received
