"""The `ancora` command: one entry point per stage.

Airflow tasks, Slurm jobs and containers all call it, so every place runs the same code.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from ancora.cli import data, dispatch, model, serve, services, train, ui
from ancora.cli.config import config_app
from ancora.cli.monitoring import alerts_app, drift_app
from ancora.cli.sagemaker import provisioning_app, sagemaker_app
from ancora.cli.stack import stack_app
from ancora.cli.task_service import task_service_app
from ancora.config import InvalidSettings
from ancora.logs import configure_logging
from ancora.private_files import restrict_umask

INVALID_SETTINGS_EXIT_CODE = 2
"""Like a usage error: the command was asked for with settings it cannot run with."""


class AncoraGroup(TyperGroup):
    """Settings that cannot be loaded end any command with their variables' names, not a traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer's own click.Context, which it does not export
        try:
            return super().invoke(ctx)
        except InvalidSettings as problem:
            typer.echo(f"Invalid settings:\n{problem}", err=True)
            raise typer.Exit(INVALID_SETTINGS_EXIT_CODE) from None


app = typer.Typer(
    name="ancora",
    cls=AncoraGroup,
    help="Ancora MLOps stack: collect, train, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    # Every command, so the launcher and each service (and what they start) create 0600/0700 files.
    restrict_umask()
    configure_logging(verbose)


app.command("collect")(data.collect)
app.command("train")(train.train)
app.add_typer(data.data_app, name="data")
app.add_typer(data.db_app, name="db")
app.command("data-api")(services.data_api)
app.command("serve")(serve.serve)
app.add_typer(stack_app, name="stack")
app.add_typer(config_app, name="config")
app.add_typer(task_service_app, name="task-service")
app.add_typer(sagemaker_app, name="sagemaker")
app.add_typer(provisioning_app, name="provisioning")
app.command("dispatch")(dispatch.dispatch)
app.add_typer(dispatch.datalake_app, name="datalake")
app.command("ui")(ui.ui)
app.add_typer(ui.users_app, name="users")
app.add_typer(model.app, name="model")
app.add_typer(drift_app, name="drift")
app.add_typer(alerts_app, name="alerts")
