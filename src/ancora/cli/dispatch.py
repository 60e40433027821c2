"""`ancora dispatch` (score the datalake's awaiting rows once) and `ancora datalake` (status, demo seed)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from sqlalchemy.exc import SQLAlchemyError

from ancora.config import get_settings

datalake_app = typer.Typer(
    help="The datalake that dispatches score: its status, and a demo table.", no_args_is_help=True
)


def dispatch(
    max_rows: int = typer.Option(0, min=0, help="Score at most this many rows (0: every awaiting row)."),
    batch_rows: int = typer.Option(
        0, min=0, help="Rows per batch and transaction; default ANCORA_DISPATCH_BATCH_ROWS."
    ),
    dag_run_id: str = typer.Option("", help="Airflow run id recorded with the dispatch, if any."),
) -> None:
    """Score every datalake row awaiting a prediction with the champion; print one JSON line.

    Exits 1 when the dispatch failed (the line and stderr say why).
    """
    from ancora.dispatch.run import run_dispatch

    settings = get_settings()
    try:
        summary = run_dispatch(
            settings, dag_run_id=dag_run_id or None, max_rows=max_rows or None, batch_rows=batch_rows or None
        )
    except SQLAlchemyError as error:
        typer.echo(f"error: the dispatch events database is unavailable: {error}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(json.dumps(summary.as_dict()))
    if summary.state == "failed":
        typer.echo(f"error: dispatch {summary.id} failed: {summary.error}", err=True)
        raise typer.Exit(code=1)


@datalake_app.command("status")
def status() -> None:
    """Connect to the datalake, count the rows awaiting a prediction, print JSON; exit 1 when down."""
    from ancora.dispatch.datalake import DatalakeConfigError, open_datalake

    try:
        result = open_datalake(get_settings()).status()
    except DatalakeConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(json.dumps(result.__dict__))
    if not result.ok:
        raise typer.Exit(code=1)


@datalake_app.command("seed")
def seed(
    rows: int = typer.Option(1000, min=1, help="Rows to add (the shipped sample is cycled past its size)."),
    invalid: int = typer.Option(0, min=0, help="How many of them carry a value the contract refuses."),
    replace: bool = typer.Option(False, "--replace", help="Drop the table first instead of appending."),
    source: str = typer.Option("", help="CSV with the 12 feature columns; default: the shipped sample."),
) -> None:
    """Create the configured datalake table if missing and add demo rows awaiting a prediction."""
    from ancora.dispatch import datalake
    from ancora.dispatch.seed import SHIPPED_SAMPLE, seed_datalake

    settings = get_settings()
    if invalid > rows:
        typer.echo("error: --invalid cannot exceed --rows", err=True)
        raise typer.Exit(code=2)
    csv_path = Path(source) if source else SHIPPED_SAMPLE
    if not csv_path.is_file():
        typer.echo(f"error: --source {csv_path} is not a file", err=True)
        raise typer.Exit(code=2)
    folder = datalake.default_sqlite_folder(settings)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    try:
        result = seed_datalake(
            datalake.open_datalake(settings), rows, csv_path, invalid_rows=invalid, replace=replace
        )
    except (datalake.DatalakeConfigError, datalake.DatalakeError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(json.dumps(result.as_dict()))
