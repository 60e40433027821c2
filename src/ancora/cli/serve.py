"""`ancora serve`: the inference API, the way `make up`, compose and a person start it."""

from __future__ import annotations

from typing import Any

import typer

from ancora.cli.faces import load_face
from ancora.config import ServingSettings, load_settings


def serve(
    port: int | None = typer.Option(None, help="Port; default ANCORA_INFERENCE_PORT (8000)."),
    access_log: bool = typer.Option(
        False, help="Log every request; off by default (the /metrics counters cover traffic)."
    ),
) -> None:
    """Serve the registry alias (default covertype@champion) on ANCORA_BIND_HOST, with hot reload."""
    from ancora import http_server

    settings = load_settings(ServingSettings)
    if settings.serving_http_workers > 1:
        workers = load_face("ancora_inference.workers", "serve")
        with workers.shared_dir():
            http_server.run_workers(
                f"{__name__}:{worker_app.__name__}",
                host=settings.bind_host,
                port=port or settings.inference_port,
                workers=settings.serving_http_workers,
                access_log=access_log,
                log_level="info",
            )
        return
    create_app = load_face("ancora_inference.app", "serve").create_app
    http_server.run(
        create_app(settings),
        host=settings.bind_host,
        port=port or settings.inference_port,
        header_timeout_seconds=settings.inference_header_timeout_seconds,
        body_timeout_seconds=settings.inference_body_timeout_seconds,
        access_log=access_log,
        log_level="info",
    )


def worker_app() -> Any:
    """The app of one HTTP worker process: uvicorn imports and calls this in each worker it starts,
    which reads the settings from the environment it inherited."""
    from ancora import http_server

    settings = load_settings(ServingSettings)
    http_server.use_deadlines(
        settings.inference_header_timeout_seconds, settings.inference_body_timeout_seconds
    )
    return load_face("ancora_inference.app", "serve").create_app(settings)
