"""`ancora drift` and `ancora alerts`: the monitoring DAGs' work, from a shell."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from ancora.config import get_settings

drift_app = typer.Typer(help="Compare data with the champion's training data.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alerts: send a test, list the recent ones.", no_args_is_help=True)


@drift_app.command("batch")
def drift_batch(
    batch: Annotated[int | None, typer.Option("--batch", help="Batch number; default: the newest.")] = None,
) -> None:
    """Drift of one batch; exit 2 when there is nothing to compare yet (no champion, few rows)."""
    from ancora.monitoring.drift import report_dict
    from ancora.monitoring.drift_runs import NothingToCompare, batch_drift

    try:
        report = batch_drift(get_settings(), batch)
    except NothingToCompare as reason:
        typer.echo(f"skipped: {reason}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(report_dict(report)))


@drift_app.command("served")
def drift_served(
    hours: Annotated[float | None, typer.Option("--hours", help="Window length, back from now.")] = None,
) -> None:
    """Drift of the predictions logged in the last window; exit 2 when there is nothing to compare yet."""
    from ancora.monitoring.drift import report_dict
    from ancora.monitoring.drift_runs import NothingToCompare, served_drift

    try:
        report = served_drift(get_settings(), datetime.now(UTC), hours)
    except NothingToCompare as reason:
        typer.echo(f"skipped: {reason}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(report_dict(report)))


@alerts_app.command("test")
def alerts_test() -> None:
    """Send a test alert through every configured channel (mail, webhook); prints which were reached."""
    from ancora.airflow.notify import send
    from ancora.monitoring.alerts import Alert

    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    channels = send(Alert("test", f"test:{stamp}", f"test alert of {stamp}", "Sent by `ancora alerts test`."))
    typer.echo(json.dumps({"delivered": channels}))
    if not channels:
        raise typer.Exit(1)


@alerts_app.command("list")
def alerts_list(
    hours: Annotated[float, typer.Option("--hours", help="How far back.")] = 24.0,
) -> None:
    """Alerts raised in the last hours, newest first, one JSON line each."""
    from datetime import timedelta

    from ancora.monitoring.alerts import store_for

    for record in store_for(get_settings()).alerts(datetime.now(UTC) - timedelta(hours=hours)):
        typer.echo(json.dumps({**record.__dict__, "at": record.at.isoformat()}))
