"""docker/mysql/init-databases.sh, run for real against this machine's MariaDB.

In compose the mysql image's entrypoint sources the script once, on an empty volume, with its helpers
`docker_process_sql` (SQL on stdin, as root) and `mysql_note`. Here those two are small shims over
the `mysql` client, and the database names get a per-test prefix so nothing on the shared server is
touched; everything else (quoting of passwords, the grants) is the script's own.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pymysql
import pytest

from tests.support.repo import REPO_ROOT

pytestmark = pytest.mark.integration

SCRIPT = REPO_ROOT / "docker" / "mysql" / "init-databases.sh"
ANCORA_DATABASES = ("ancora_data", "ancora_events", "ancora_tasks", "ancora_provisioning")
# Quotes, a backslash, a dollar and a semicolon: none of them may end the SQL string or run anything.
AWKWARD_PASSWORD = "it's a \\ pa$$word; DROP DATABASE x; --\""


@dataclass(frozen=True)
class Initialised:
    prefix: str
    ancora_user: str
    mlflow_user: str


def connect(user: str = "root", password: str = "", database: str | None = None) -> pymysql.Connection:
    return pymysql.connect(host="127.0.0.1", port=3306, user=user, password=password, database=database)


def shown_databases(user: str, password: str, prefix: str) -> set[str]:
    with connect(user, password) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW DATABASES")
        return {name for (name,) in cursor.fetchall() if name.startswith(prefix)}


def run_script(state: Initialised) -> subprocess.CompletedProcess[str]:
    renames = ";".join(
        [f"s/\\b{name}\\b/{state.prefix}_{name}/g" for name in ANCORA_DATABASES]
        + [f"s/ mlflow\\([ .;]\\)/ {state.prefix}_mlflow\\1/g"]
    )
    shims = f"""
        mysql_note() {{ echo "note: $*"; }}
        docker_process_sql() {{ sed -e '{renames}' | mysql --protocol=tcp -h 127.0.0.1 -u root "$@"; }}
    """
    environment = {
        "PATH": "/usr/bin:/bin",
        "MYSQL_ANCORA_USER": state.ancora_user,
        "MYSQL_ANCORA_PASSWORD": AWKWARD_PASSWORD,
        "MYSQL_MLFLOW_USER": state.mlflow_user,
        "MYSQL_MLFLOW_PASSWORD": "mlflow-" + AWKWARD_PASSWORD,
    }
    return subprocess.run(
        ["bash", "-c", f"set -eu -o pipefail\n{shims}\nsource {SCRIPT}"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def initialised() -> Iterator[Initialised]:
    assert shutil.which("mysql"), "the mysql client (Debian's mariadb-client) is needed"
    prefix = f"t{secrets.token_hex(3)}"
    state = Initialised(prefix, f"{prefix}_app", f"{prefix}_ml")
    try:
        result = run_script(state)
        assert result.returncode == 0, result.stdout + result.stderr
        yield state
    finally:
        with connect() as connection, connection.cursor() as cursor:
            for name in (*ANCORA_DATABASES, "mlflow"):
                cursor.execute(f"DROP DATABASE IF EXISTS `{prefix}_{name}`")
            for user in (state.ancora_user, state.mlflow_user):
                cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def test_each_user_logs_in_with_its_password_and_sees_only_its_databases(initialised: Initialised) -> None:
    prefix = initialised.prefix
    assert shown_databases(initialised.ancora_user, AWKWARD_PASSWORD, prefix) == {
        f"{prefix}_{name}" for name in ANCORA_DATABASES
    }
    assert shown_databases(initialised.mlflow_user, "mlflow-" + AWKWARD_PASSWORD, prefix) == {
        f"{prefix}_mlflow"
    }
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        connect(initialised.ancora_user, AWKWARD_PASSWORD, database=f"{prefix}_mlflow")
    database = f"{prefix}_ancora_data"
    with (
        connect(initialised.ancora_user, AWKWARD_PASSWORD, database) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("CREATE TABLE probe (id INT PRIMARY KEY)")
        cursor.execute("SELECT @@character_set_database")
        assert cursor.fetchone() == ("utf8mb4",)


def test_a_second_run_keeps_databases_and_users(initialised: Initialised) -> None:
    with (
        connect(initialised.ancora_user, AWKWARD_PASSWORD, f"{initialised.prefix}_ancora_data") as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("CREATE TABLE kept (id INT PRIMARY KEY)")
    rerun = run_script(initialised)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    with (
        connect(initialised.ancora_user, AWKWARD_PASSWORD, f"{initialised.prefix}_ancora_data") as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("SHOW TABLES")
        assert cursor.fetchall() == (("kept",),)


def test_a_missing_variable_stops_it_with_the_variable_named() -> None:
    result = subprocess.run(
        ["bash", "-c", f"mysql_note() {{ :; }}; docker_process_sql() {{ cat >/dev/null; }}; source {SCRIPT}"],
        env={"PATH": "/usr/bin:/bin", "MYSQL_ANCORA_USER": "a", "MYSQL_ANCORA_PASSWORD": "b"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "MYSQL_MLFLOW_USER" in result.stderr
