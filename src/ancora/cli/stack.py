"""`ancora stack up|down|status|logs|clean`: the native stack behind `make up`."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import typer

from ancora.config import Settings, get_settings
from ancora.locations import checkout_root
from ancora.stack import StackError, Supervisor, native_stack

stack_app = typer.Typer(help="Run the native stack (every service a local process).", no_args_is_help=True)


def supervisor(settings: Settings) -> Supervisor:
    # Health polls would otherwise log every request.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return Supervisor(native_stack(settings), settings.run_dir, settings.log_dir, settings.state_dir)


def print_status(chief: Supervisor) -> bool:
    """One line per service; True when every service runs and answers its health check."""
    all_well = True
    for status in chief.status():
        if not status.running:
            state = "stopped"
        elif status.healthy:
            state = f"healthy  pid {status.pid}"
        else:
            state = f"UNHEALTHY pid {status.pid}"
        all_well = all_well and bool(status.healthy)
        typer.echo(f"  {status.name:<22} {state:<20} {status.url or ''}")
    return all_well


@stack_app.command("up")
def up(
    timeout: float | None = typer.Option(
        None, help="Seconds to wait for health; default ANCORA_STACK_START_TIMEOUT_SECONDS."
    ),
) -> None:
    """Start every service that is not running and wait until all are healthy (safe to repeat)."""
    settings = get_settings()
    chief = supervisor(settings)
    try:
        report = chief.up(timeout or settings.stack_start_timeout_seconds)
    except StackError as problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(code=1) from problem
    if report.started:
        typer.echo(f"Started {', '.join(report.started)} in {report.elapsed:.1f} s.")
    else:
        typer.echo("Everything was already running.")
    if report.already_running and report.started:
        typer.echo(f"Already running: {', '.join(report.already_running)}.")
    for name, seconds in report.job_seconds.items():
        typer.echo(f"  {name} took {seconds:.1f} s")
    print_status(chief)
    for note in chief.stack.notes:
        typer.echo(note)
    typer.echo(f"Logs: {settings.log_dir}   State: {settings.state_dir}")


@stack_app.command("down")
def down(
    timeout: float | None = typer.Option(
        None, help="Seconds between SIGTERM and SIGKILL; default ANCORA_STACK_STOP_TIMEOUT_SECONDS."
    ),
) -> None:
    """Stop every service `up` started, with everything they forked."""
    settings = get_settings()
    if not settings.run_dir.exists():
        typer.echo("Nothing to stop.")
        return
    stopped = supervisor(settings).down(timeout or settings.stack_stop_timeout_seconds)
    typer.echo(f"Stopped {', '.join(stopped)}." if stopped else "Nothing was running.")


@stack_app.command("status")
def status() -> None:
    """Show which services run and answer their health checks; exit 1 unless all do."""
    settings = get_settings()
    chief = supervisor(settings)
    if not print_status(chief):
        raise typer.Exit(code=1)


@stack_app.command("logs")
def logs(
    service: str | None = typer.Argument(None, help="One service or job; default: all of them."),
    follow: bool = typer.Option(True, "--follow/--no-follow", "-f", help="Keep printing new lines."),
    lines: int = typer.Option(20, "--lines", "-n", help="Lines to show from the end of each log."),
) -> None:
    """Tail the logs in the stack's log folder."""
    log_dir = get_settings().log_dir
    files = [log_dir / f"{service}.log"] if service else sorted(log_dir.glob("*.log"))
    if not files or not all(path.exists() for path in files):
        typer.echo(f"no logs in {log_dir}", err=True)
        raise typer.Exit(code=1)
    command = ["tail", "-n", str(lines), *(["-F"] if follow else []), *map(str, files)]
    os.execvp(command[0], command)  # noqa: S606


@stack_app.command("clean")
def clean() -> None:
    """Stop the stack, then delete its state folder (databases, logs, artifacts, passwords)."""
    settings = get_settings()
    state_dir = settings.state_dir
    checkout = checkout_root()
    precious = {Path("/"), Path.home(), *([checkout, *checkout.parents] if checkout else [])}
    if state_dir.resolve() in precious:
        typer.echo(f"error: refusing to delete {state_dir}", err=True)
        raise typer.Exit(code=1)
    if settings.run_dir.exists():
        supervisor(settings).down(settings.stack_stop_timeout_seconds)
    if state_dir.exists():
        shutil.rmtree(state_dir)
        typer.echo(f"Removed {state_dir}.")
    else:
        typer.echo(f"{state_dir} does not exist.")
