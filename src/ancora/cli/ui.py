"""`ancora ui` runs the Streamlit app; `ancora users` manages who may sign in to it."""

from __future__ import annotations

import math
import os
import sys
from importlib.util import find_spec

import typer

from ancora.config import Settings, get_settings
from ancora.locations import FaceNotInstalled, ui_script

users_app = typer.Typer(
    help="Users of the Streamlit app (the users file, outside the repository).", no_args_is_help=True
)


def streamlit_argv(settings: Settings, port: int | None = None) -> list[str]:
    """`streamlit run ancora_ui/app.py` on ANCORA_BIND_HOST, headless, no usage stats, no file watcher."""
    upload_mb = max(1, math.ceil(settings.inference_batch_max_rows * 2048 / 1_000_000))
    return [
        sys.executable, "-m", "streamlit", "run", str(ui_script()),
        "--server.address", settings.bind_host,
        "--server.port", str(port or settings.ui_port),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--server.maxUploadSize", str(upload_mb),
        "--browser.gatherUsageStats", "false",
        "--runner.magicEnabled", "false",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip


def ui(port: int | None = typer.Option(None, help="Port; default ANCORA_UI_PORT (8501).")) -> None:
    """Serve the Streamlit app on ANCORA_BIND_HOST (the process becomes Streamlit's server)."""
    settings = get_settings()
    try:
        if find_spec("streamlit") is None:
            raise FaceNotInstalled("streamlit is not installed: install ancora[ui]")
        argv = streamlit_argv(settings, port)
    except FaceNotInstalled as missing:
        typer.echo(f"error: {missing}", err=True)
        raise typer.Exit(2) from None
    os.execv(argv[0], argv)  # noqa: S606  the launcher supervises Streamlit's own process


@users_app.command("add")
def add_user(
    username: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option(..., "--role", help="Admin, DispatchUser or ShowroomUser."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of standard input (scripts)."
    ),
) -> None:
    """Create a user, or replace the role and password of an existing one (asks for the password)."""
    from ancora.ui.users import UsersFileError, UserStore, check_password, parse_role

    try:
        chosen_role = parse_role(role)
    except UsersFileError as problem:
        raise typer.BadParameter(str(problem), param_hint="--role") from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        check_password(password)
        store = UserStore(get_settings().ui_users_file)
        user, created = store.add(username, chosen_role, password)
    except UsersFileError as problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2) from None
    action = "created" if created else "updated"
    typer.echo(f"user {user.username!r} {action} with role {user.role.value} in {store.path}")


@users_app.command("list")
def list_users() -> None:
    """Print each user's name and role (never a hash)."""
    from ancora.ui.users import UsersFileError, UserStore

    store = UserStore(get_settings().ui_users_file)
    try:
        users = store.load()
    except UsersFileError as problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2) from None
    if not users:
        typer.echo(f"no users in {store.path}; create one with `ancora users add --role Admin <name>`")
    for user in users.values():
        typer.echo(f"{user.username}\t{user.role.value}")


@users_app.command("remove")
def remove_user(username: str = typer.Argument(..., help="Login name.")) -> None:
    """Delete a user; an open session of theirs ends at its next page load."""
    from ancora.ui.users import UserStore

    store = UserStore(get_settings().ui_users_file)
    if not store.remove(username):
        typer.echo(f"error: no user {username!r} in {store.path}", err=True)
        raise typer.Exit(1)
    typer.echo(f"user {username!r} removed")
