"""The app's users file, roles, the `ancora users` and `ancora ui` commands, and the launcher entry."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ancora.cli import app
from ancora.cli.ui import streamlit_argv
from ancora.config import Settings, get_settings
from ancora.locations import ui_script
from ancora.stack.services import native_stack
from ancora.ui.users import (
    PAGES_BY_ROLE,
    Page,
    Role,
    UsersFileError,
    UserStore,
    may_administer,
    parse_role,
)

PASSWORD = "s3cret-enough"


def test_roles_see_the_pages_the_issue_names() -> None:
    assert set(PAGES_BY_ROLE[Role.ADMIN]) == set(Page)
    assert set(PAGES_BY_ROLE[Role.DISPATCH_USER]) == {Page.DISPATCHES, Page.MONITOR, Page.TASKS}
    assert PAGES_BY_ROLE[Role.SHOWROOM_USER] == (Page.PREDICT, Page.TASKS), "every user sees their own tasks"
    assert may_administer(Role.ADMIN)
    assert not may_administer(Role.DISPATCH_USER)
    assert not may_administer(Role.SHOWROOM_USER)


def test_users_file_holds_argon2_hashes_only_and_is_private(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "ui" / "users.yaml")
    user, created = store.add("ada", Role.ADMIN, PASSWORD)
    assert created
    text = store.path.read_text()
    assert PASSWORD not in text
    assert yaml.safe_load(text)["users"]["ada"]["password_hash"].startswith("$argon2id$")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.authenticate("ada", PASSWORD) == user
    assert store.authenticate("ada", "wrong-password") is None
    assert store.authenticate("nobody", PASSWORD) is None


def test_adding_again_replaces_role_and_password(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.yaml")
    store.add("ada", Role.ADMIN, PASSWORD)
    _, created = store.add("ada", Role.SHOWROOM_USER, "another-password")
    assert not created
    assert store.load()["ada"].role is Role.SHOWROOM_USER
    assert store.authenticate("ada", PASSWORD) is None
    assert store.authenticate("ada", "another-password") is not None
    assert store.remove("ada")
    assert store.load() == {}


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("ada", "short", "at least 8 characters"),
        ("has space", PASSWORD, "invalid username"),
        ("", PASSWORD, "invalid username"),
    ],
)
def test_bad_usernames_and_passwords_are_refused(
    tmp_path: Path, username: str, password: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsersFileError, match=message):
        UserStore(tmp_path / "users.yaml").add(username, Role.ADMIN, password)


def test_roles_parse_case_insensitively_and_unknown_ones_are_named() -> None:
    assert parse_role("dispatchuser") is Role.DISPATCH_USER
    with pytest.raises(UsersFileError, match="choose one of Admin, DispatchUser, ShowroomUser"):
        parse_role("Root")


def test_a_broken_users_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text("users:\n  ada: {role: Admin}\n")
    with pytest.raises(UsersFileError, match="needs 'role' and 'password_hash'"):
        UserStore(path).load()


def test_cli_adds_the_first_admin_from_stdin_and_lists_users() -> None:
    runner = CliRunner()
    added = runner.invoke(
        app, ["users", "add", "--role", "Admin", "ada", "--password-stdin"], input=f"{PASSWORD}\n"
    )
    assert added.exit_code == 0, added.output
    path = get_settings().ui_users_file
    assert f"user 'ada' created with role Admin in {path}" in added.output
    assert UserStore(path).authenticate("ada", PASSWORD) is not None
    listed = runner.invoke(app, ["users", "list"])
    assert listed.output.strip() == "ada\tAdmin"
    assert "argon2" not in listed.output


def test_cli_prompts_for_the_password_twice() -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["users", "add", "--role", "ShowroomUser", "sam"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert UserStore(get_settings().ui_users_file).load()["sam"].role is Role.SHOWROOM_USER


def test_cli_refuses_an_unknown_role_and_a_short_password() -> None:
    runner = CliRunner()
    role = runner.invoke(
        app, ["users", "add", "--role", "Root", "ada", "--password-stdin"], input=f"{PASSWORD}\n"
    )
    assert role.exit_code != 0
    assert "unknown role 'Root'" in role.output
    short = runner.invoke(
        app, ["users", "add", "--role", "Admin", "ada", "--password-stdin"], input="short\n"
    )
    assert short.exit_code == 2
    assert "at least 8 characters" in short.output
    assert not get_settings().ui_users_file.exists()


def test_ui_command_runs_streamlit_headless_on_the_bind_host_without_usage_stats() -> None:
    settings = Settings(_env_file=None, bind_host="127.0.0.1", ui_port=18501)
    argv = streamlit_argv(settings)
    assert argv[1:4] == ["-m", "streamlit", "run"]
    assert argv[4] == str(ui_script()) and ui_script().is_file()
    options = dict(zip(argv[5::2], argv[6::2], strict=True))
    assert options["--server.address"] == "127.0.0.1"
    assert options["--server.port"] == "18501"
    assert options["--server.headless"] == "true"
    assert options["--browser.gatherUsageStats"] == "false"


def test_make_up_starts_the_ui_and_checks_streamlits_health_endpoint() -> None:
    settings = Settings(_env_file=None, ui_port=18502)
    ui = next(service for service in native_stack(settings).services if service.name == "ui")
    assert ui.argv[-2:] == ("ancora", "ui")
    assert ui.health.url == "http://127.0.0.1:18502/_stcore/health"
    assert ui.url == "http://127.0.0.1:18502"


def test_users_file_defaults_to_the_state_folder() -> None:
    settings = get_settings()
    assert settings.ui_users_file == settings.state_dir / "ui" / "users.yaml"
