"""Commands that run long-lived services."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from ancora.cli.faces import load_face
from ancora.config import get_settings


class SimulatorMode(StrEnum):
    reference = "reference"
    intended = "intended"


def data_api(
    port: int | None = typer.Option(None, help="Port; default ANCORA_SIMULATOR_PORT."),
    rotation_seconds: float | None = typer.Option(
        None, help="Seconds between batch advances; default ANCORA_SIMULATOR_ROTATION_SECONDS."
    ),
    mode: Annotated[
        SimulatorMode | None,
        typer.Option(
            help="reference: every batch samples the group's slice, as the course's server does; "
            "intended: batch B samples the B-th slice. Default ANCORA_SIMULATOR_MODE."
        ),
    ] = None,
) -> None:
    """Run the data API simulator (the course contract) on 127.0.0.1."""
    import uvicorn

    create_app = load_face("ancora_data_api.app", "simulator").create_app
    settings = get_settings()
    if rotation_seconds is not None:
        settings = settings.model_copy(update={"simulator_rotation_seconds": rotation_seconds})
    if mode is not None:
        settings = settings.model_copy(update={"simulator_mode": mode.value})
    uvicorn.run(
        create_app(settings),
        host=settings.bind_host,
        port=port or settings.simulator_port,
        log_level="info",
    )
