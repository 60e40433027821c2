"""Airflow's configuration for the native stack, derived from Ancora's settings.

Airflow reads its own ``AIRFLOW__*`` variables; they are built here from the one settings object so
the launcher, the tests and compose agree on where Airflow keeps its state.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet

from ancora.config import Settings
from ancora.locations import dags_folder, plugins_folder
from ancora.private_files import private_dir, read_or_create_private_file

ADMIN_USER = "admin"


def fernet_key() -> str:
    return Fernet.generate_key().decode()


def persistent_secret(path: Path, make: Callable[[], str] = lambda: secrets.token_urlsafe(32)) -> str:
    """A random secret kept in the state folder, so every Airflow component signs with the same key;
    created with mode 0600 (``ancora.private_files``)."""
    return read_or_create_private_file(path, make)


def passwords_file(settings: Settings) -> Path:
    return settings.airflow_home / "simple_auth_manager_passwords.json.generated"


def admin_passwords(settings: Settings) -> Path:
    """The simple auth manager's passwords file, with a generated admin password, made here with mode
    0600: Airflow would otherwise create it with the process umask and print the password to its log."""
    path = passwords_file(settings)
    read_or_create_private_file(path, lambda: json.dumps({ADMIN_USER: secrets.token_urlsafe(16)}) + "\n")
    return path


def airflow_environment(settings: Settings) -> dict[str, str]:
    """Environment for every native Airflow process (api-server, scheduler, dag-processor, triggerer)."""
    home = private_dir(settings.airflow_home)
    venv_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return {
        "AIRFLOW_HOME": str(home),
        "PATH": venv_bin if not path else f"{venv_bin}{os.pathsep}{path}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow_parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__FERNET_KEY": persistent_secret(home / "fernet.key", fernet_key),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(admin_passwords(settings)),
        "AIRFLOW__API__HOST": settings.bind_host,
        "AIRFLOW__API__PORT": str(settings.airflow_port),
        "AIRFLOW__API__BASE_URL": settings.airflow_api_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": persistent_secret(home / "api_secret_key"),
        "AIRFLOW__API_AUTH__JWT_SECRET": persistent_secret(home / "jwt_secret"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.airflow_api_url}/execution/",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(settings.log_dir / "airflow"),
        "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": str(
            settings.log_dir / "airflow" / "dag_processor"
        ),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
    }
