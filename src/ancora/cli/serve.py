"""`ancora serve`: the inference API, the way `make up`, compose and a person start it."""

from __future__ import annotations

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

    create_app = load_face("ancora_inference.app", "serve").create_app
    settings = load_settings(ServingSettings)
    http_server.run(
        create_app(settings),
        host=settings.bind_host,
        port=port or settings.inference_port,
        header_timeout_seconds=settings.inference_header_timeout_seconds,
        body_timeout_seconds=settings.inference_body_timeout_seconds,
        access_log=access_log,
        log_level="info",
    )
