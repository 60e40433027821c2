"""Commands that document the settings."""

from __future__ import annotations

import json

import typer

from ancora.config import get_settings
from ancora.redaction import masked
from ancora.settings_docs import env_example, settings_table, write_settings_docs

config_app = typer.Typer(help="Show and document the settings.", no_args_is_help=True)


@config_app.command("env-example")
def print_env_example() -> None:
    """Print .env.example (every ANCORA_* variable with its description)."""
    typer.echo(env_example(), nl=False)


@config_app.command("table")
def print_settings_table() -> None:
    """Print the settings as a Markdown table (the README's)."""
    typer.echo(settings_table())


@config_app.command("show")
def show() -> None:
    """Print the effective settings as JSON, secrets masked (URL passwords too)."""
    typer.echo(json.dumps(masked(json.loads(get_settings().model_dump_json())), indent=2))


@config_app.command("write-docs")
def write_docs() -> None:
    """Regenerate .env.example and the README's settings table after changing the settings."""
    try:
        write_settings_docs()
    except FileNotFoundError as missing:
        typer.echo(f"error: {missing}", err=True)
        raise typer.Exit(2) from None
    typer.echo("wrote .env.example and the README's settings table")
