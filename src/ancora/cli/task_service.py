"""`ancora task-service`: run the remote-execution service; `users add` creates its accounts."""

from __future__ import annotations

import typer

from ancora.config import get_settings

task_service_app = typer.Typer(
    help="The task service (remote jobs, the client library's server) and its users.",
    invoke_without_command=True,
)
users_app = typer.Typer(help="Accounts of the task service.", no_args_is_help=True)
task_service_app.add_typer(users_app, name="users")


@task_service_app.callback()
def serve(
    context: typer.Context,
    port: int | None = typer.Option(None, help="Port; default ANCORA_TASK_SERVICE_PORT (8002)."),
) -> None:
    """Serve on ANCORA_BIND_HOST; jobs run through Airflow or inline (ANCORA_REMOTE_EXECUTOR)."""
    if context.invoked_subcommand is not None:
        return
    import uvicorn

    from task_service.app import create_app

    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.bind_host,
        port=port or settings.task_service_port,
        log_level="info",
    )


@users_app.command("add")
def add_user(
    username: str = typer.Argument(..., help="Login name."),
    admin: bool = typer.Option(False, "--admin", help="May see and cancel every user's tasks."),
    password: str = typer.Option(
        ...,
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        envvar="ANCORA_NEW_USER_PASSWORD",
        help="Asked for when not given; never echoed.",
    ),
) -> None:
    """Create a user, or replace the password and role of an existing one."""
    from ancora.remote.auth import hash_password
    from ancora.remote.store import TaskStore

    if len(password) < 8:
        raise typer.BadParameter("use at least 8 characters", param_hint="password")
    store = TaskStore.open(get_settings().resolved_remote_db_url)
    store.add_user(username, hash_password(password), is_admin=admin)
    typer.echo(f"user {username!r} saved{' (admin)' if admin else ''}")
