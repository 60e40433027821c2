"""The stack's state is for its owner only: folders 0700, files 0600, secrets 0600 from their first byte.

Each test runs with the permissive umask 022 a login shell usually has, so a file that comes out 0600
was made so on purpose, not by the surrounding umask.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ancora.airflow_env import ADMIN_USER, airflow_environment, passwords_file
from ancora.config import Settings
from ancora.private_files import private_dir, read_or_create_private_file, write_private_file
from ancora.stack.services import HealthCheck, Service, Stack
from ancora.stack.supervisor import Supervisor
from tests.support.simulator import free_port


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def no_chmod(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret restricted after it was written had a moment of being readable: refuse chmod."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a secret file was chmod-ed after creation")

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(Path, "chmod", refuse)


@pytest.mark.usefixtures("no_chmod")
def test_secret_files_are_0600_from_the_start(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "signing.key"
    assert read_or_create_private_file(key, lambda: "first") == "first"
    assert read_or_create_private_file(key, lambda: "second") == "first"
    assert mode(key) == 0o600
    assert mode(key.parent) == 0o700
    write_private_file(tmp_path / "keys" / "other", "x")
    assert mode(tmp_path / "keys" / "other") == 0o600
    assert sorted(p.name for p in key.parent.iterdir()) == ["other", "signing.key"]  # no leftovers


def test_racing_first_starts_agree_on_one_secret(tmp_path: Path) -> None:
    key = tmp_path / "jwt_secret"
    values: list[str] = []
    barrier = threading.Barrier(8)

    def create(index: int) -> None:
        barrier.wait()
        values.append(read_or_create_private_file(key, lambda: f"value-{index}"))

    threads = [threading.Thread(target=create, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(values)) == 1
    assert mode(key) == 0o600


@pytest.mark.usefixtures("no_chmod")
def test_airflow_keys_and_admin_password_are_private(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    environment = airflow_environment(settings)
    home = settings.airflow_home
    assert mode(home) == 0o700
    for name in ("fernet.key", "api_secret_key", "jwt_secret"):
        assert mode(home / name) == 0o600, name
    passwords = passwords_file(settings)
    assert environment["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(passwords)
    assert mode(passwords) == 0o600
    password = json.loads(passwords.read_text())[ADMIN_USER]
    assert len(password) >= 16
    airflow_environment(settings)
    assert json.loads(passwords.read_text())[ADMIN_USER] == password  # kept across starts


def test_an_open_state_folder_is_narrowed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    (state / "raw.db").write_text("")
    assert private_dir(state) == state
    assert mode(state) == 0o700


def test_the_launcher_keeps_state_logs_and_what_services_write_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)  # as an older version left it
    port = free_port()
    script = (
        "import http.server, sys, pathlib\n"
        "pathlib.Path('service.db').write_text('rows')\n"
        "pathlib.Path('cache').mkdir()\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    service = Service(
        name="writer",
        argv=(sys.executable, "-c", script),
        health=HealthCheck(f"http://127.0.0.1:{port}/"),
        url=f"http://127.0.0.1:{port}",
    )
    stack = Stack(services=(service,), jobs=(), environment=lambda: dict(os.environ))
    chief = Supervisor(stack, state / "run", state / "logs", state)
    try:
        chief.up(timeout=60)
    finally:
        chief.down(timeout=5)
    assert mode(state) == 0o700
    assert mode(state / "run") == 0o700
    assert mode(state / "logs") == 0o700
    assert mode(state / "service.db") == 0o600
    assert mode(state / "cache") == 0o700


def test_ancora_commands_create_private_databases(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("ANCORA_")}
    environment["ANCORA_STATE_DIR"] = str(tmp_path / "state")
    subprocess.run(
        [sys.executable, "-m", "ancora", "db", "upgrade"],
        env=environment,
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=120,
        umask=0o022,
    )
    database = tmp_path / "state" / "data" / "raw.db"
    assert mode(database) == 0o600
    assert mode(database.parent) == 0o700
    assert mode(tmp_path / "state") == 0o700
