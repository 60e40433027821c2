"""The services' packages (the faces), imported by name only when a command starts one.

``ancora`` imports no face at module level: the task-service role has no FastAPI inference app, the
UI role no Airflow. A command that starts a face loads it here, and a role installed without it gets
the extra to install instead of a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import typer


def load_face(module: str, extra: str) -> ModuleType:
    """``module`` imported, or exit 2 naming the ``ancora[extra]`` that provides it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as missing:
        typer.echo(
            f"error: {module} cannot be imported ({missing.name} is not installed): install ancora[{extra}]",
            err=True,
        )
        raise typer.Exit(2) from None
