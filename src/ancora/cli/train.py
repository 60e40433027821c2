"""`ancora train`: the training stage, the same code in Airflow, on Slurm and in a container."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Annotated

import typer

from ancora.config import get_settings

EXIT_DATA = 2
"""The data cannot support training; retrying without new data will not help."""
EXIT_TRACKING = 3
"""MLflow failed (down, unhealthy, artifact upload refused); a retry may succeed."""


def train(
    family: Annotated[
        list[str] | None,
        typer.Option(
            "--family", "-f", help="Model family to search (repeatable); default ANCORA_TRAIN_FAMILIES."
        ),
    ] = None,
    budget: Annotated[
        int | None,
        typer.Option(
            "--budget", "-b", min=1, help="Configurations per family; default ANCORA_TRAIN_SEARCH_BUDGET."
        ),
    ] = None,
) -> None:
    """Train candidates on the validated rows, register the best, apply the gate; print one JSON line."""
    from mlflow.exceptions import MlflowException

    from ancora.training.data import TrainingDataError
    from ancora.training.model_io import BrokenModel
    from ancora.training.run import TrainingRequest, train_and_register
    from ancora.training.tracking import TrackingUnavailable

    settings = get_settings()
    try:
        request = TrainingRequest.from_settings(settings, family or None, budget)
    except ValueError as problem:
        raise typer.BadParameter(str(problem), param_hint="--family") from problem
    try:
        # MLflow and its plugins print progress to stdout; stdout carries only the result line.
        with contextlib.redirect_stdout(sys.stderr):
            outcome = train_and_register(settings, request)
    except TrainingDataError as problem:
        typer.echo(f"error: {problem}; nothing was registered", err=True)
        raise typer.Exit(code=EXIT_DATA) from problem
    except (TrackingUnavailable, MlflowException, BrokenModel) as problem:
        typer.echo(f"error: {problem}; nothing was promoted", err=True)
        raise typer.Exit(code=EXIT_TRACKING) from problem
    typer.echo(json.dumps(outcome.summary(), sort_keys=True))
