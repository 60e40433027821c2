"""`ancora model rollback`: move the champion alias back, recording who and why on the versions."""

from __future__ import annotations

import getpass
import json
from typing import Annotated

import typer

from ancora.clients.mlflow import MlflowError, MlflowRestClient
from ancora.config import get_settings
from ancora.training.rollback import RollbackRefused, roll_back

app = typer.Typer(help="The registered model: roll the serving alias back.", no_args_is_help=True)


@app.command()
def rollback(
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded on both versions.")],
    to: Annotated[
        str | None, typer.Option("--to", help="Version to serve; default: the previous champion.")
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who rolls back; default: the shell user.")] = None,
) -> None:
    """Point `champion` at an earlier version; the inference API follows within its poll interval."""
    settings = get_settings()
    who = by or getpass.getuser()
    with MlflowRestClient.from_settings(settings) as client:
        try:
            result = roll_back(
                client, settings.registered_model_name, settings.serving_alias, who, reason, to
            )
        except RollbackRefused as refused:
            typer.echo(f"rollback refused: {refused}", err=True)
            raise typer.Exit(2) from None
        except MlflowError as problem:
            typer.echo(f"MLflow failed: {problem}", err=True)
            raise typer.Exit(3) from None
    typer.echo(json.dumps(result.as_dict()))
