"""`ancora task-service`: run the remote-execution service; `users add/remove/list` manage its
accounts; `purge` removes finished tasks' files past their retention (the service does it hourly)."""

from __future__ import annotations

import typer

from ancora.cli.faces import load_face
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

    create_app = load_face("ancora_task_service.app", "tasks").create_app
    settings = get_settings()
    cert, key = settings.task_service_tls_cert_file, settings.task_service_tls_key_file
    if (cert is None) != (key is None):
        raise typer.BadParameter(
            "set both ANCORA_TASK_SERVICE_TLS_CERT_FILE and ANCORA_TASK_SERVICE_TLS_KEY_FILE, or neither"
        )
    uvicorn.run(
        create_app(settings),
        host=settings.bind_host,
        port=port or settings.task_service_port,
        log_level="info",
        ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None,
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
    """Create a user, or reset the password and role of an existing one (their old tokens stop working)."""
    from ancora.remote.auth import hash_password
    from ancora.remote.store import TaskStore

    if len(password) < 8:
        raise typer.BadParameter("use at least 8 characters", param_hint="password")
    store = TaskStore.open(get_settings().remote_db_url)
    created = store.add_user(username, hash_password(password), is_admin=admin)
    role = " (admin)" if admin else ""
    if created:
        typer.echo(f"user {username!r} created{role}")
    else:
        typer.echo(f"user {username!r} reset{role}; tokens issued before no longer work")


@users_app.command("remove")
def remove_user(username: str = typer.Argument(..., help="Login name.")) -> None:
    """Delete a user: their tokens stop working at once; their tasks stay (admins still see them)."""
    from ancora.remote.store import TaskStore

    store = TaskStore.open(get_settings().remote_db_url)
    if not store.remove_user(username):
        typer.echo(f"no user {username!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"user {username!r} removed; their tokens no longer work")


@users_app.command("list")
def list_users() -> None:
    """The users, one a line: name and role."""
    from ancora.remote.store import TaskStore

    for user in TaskStore.open(get_settings().remote_db_url).list_users():
        typer.echo(f"{user.username}\t{'admin' if user.is_admin else 'user'}")


@task_service_app.command("purge")
def purge() -> None:
    """Remove the files of tasks finished longer ago than ANCORA_REMOTE_TASK_RETENTION_HOURS."""
    from ancora.remote.service import TaskService

    service = TaskService(get_settings())
    try:
        purged = service.purge_expired()
    finally:
        service.close()
    typer.echo(f"removed the files of {len(purged)} finished tasks")
