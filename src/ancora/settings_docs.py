"""`.env.example` and the README's settings table, generated from the settings object itself.

Written out from the field definitions so the documentation cannot drift from what is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from ancora.config import Settings
from ancora.config.base import derived_rule
from ancora.locations import PACKAGE_FOLDER, require_checkout

PLACEHOLDER = "change-me"


def env_name(field_name: str) -> str:
    return f"{Settings.model_config.get('env_prefix', '')}{field_name}".upper()


def shown_default(info: FieldInfo) -> str:
    """The default as a variable would spell it; empty for none, and for one derived at load."""
    if derived_rule(info.json_schema_extra) is not None:
        return ""
    default: Any = info.get_default(call_default_factory=True)
    if default is None:
        return ""
    if isinstance(default, Path):
        # A file shipped in the package lives wherever ancora is installed: derived, not a fixed path.
        return "" if default.is_relative_to(PACKAGE_FOLDER) else str(default)
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, dict | list):
        return json.dumps(default, separators=(",", ":"))
    return str(default)


def table_default(info: FieldInfo) -> str:
    if is_secret(info):
        return "(secret, unset)"
    rule = derived_rule(info.json_schema_extra)
    if rule is not None:
        return f"(derived: {rule})"
    default = info.get_default(call_default_factory=True)
    if isinstance(default, Path) and default.is_relative_to(PACKAGE_FOLDER):
        return "(derived: the file shipped in the installed package)"
    return shown_default(info) or "(unset)"


def is_secret(info: FieldInfo) -> bool:
    return info.annotation is SecretStr or "SecretStr" in str(info.annotation)


@dataclass(frozen=True)
class ComposeVariable:
    """A variable only docker-compose.yml reads (for ${...}); native processes never see it."""

    name: str
    description: str
    default: str = ""
    secret: bool = False


COMPOSE_VARIABLES = (
    ComposeVariable(
        "PUBLISH_ADDRESS",
        "Host address the compose stack publishes its ports on; 0.0.0.0 to reach them from other machines.",
        "127.0.0.1",
    ),
    ComposeVariable(
        "DATA_API_URL",
        "Data API the compose stack collects from: the simulator (--profile simulator) or the course API.",
        "http://data-api:8001",
    ),
    ComposeVariable("MYSQL_ROOT_PASSWORD", "MySQL's root password (the mysql service only).", secret=True),
    ComposeVariable(
        "MYSQL_ANCORA_USER", "MySQL user of Ancora's databases (raw data, events, tasks, BYOM).", "ancora"
    ),
    ComposeVariable("MYSQL_ANCORA_PASSWORD", "Password of MYSQL_ANCORA_USER.", secret=True),
    ComposeVariable("MYSQL_MLFLOW_USER", "MySQL user of MLflow's backend store.", "mlflow"),
    ComposeVariable("MYSQL_MLFLOW_PASSWORD", "Password of MYSQL_MLFLOW_USER.", secret=True),
    ComposeVariable("MINIO_ROOT_USER", "MinIO's administrator (minio-init only).", "ancora-admin"),
    ComposeVariable(
        "MINIO_ROOT_PASSWORD", "Password of MINIO_ROOT_USER (8 characters or more).", secret=True
    ),
    ComposeVariable(
        "MINIO_MLFLOW_ACCESS_KEY",
        "MinIO user of the MLflow server, allowed on the artifacts bucket only.",
        "mlflow",
    ),
    ComposeVariable(
        "MINIO_MLFLOW_SECRET_KEY",
        "Secret key of MINIO_MLFLOW_ACCESS_KEY (8 characters or more).",
        secret=True,
    ),
    ComposeVariable("MLFLOW_WORKERS", "Worker processes of the MLflow server.", "2"),
    ComposeVariable(
        "AIRFLOW_POSTGRES_PASSWORD", "Password of Airflow's PostgreSQL metadata database.", secret=True
    ),
    ComposeVariable(
        "AIRFLOW_FERNET_KEY",
        "Key encrypting Airflow's connections and variables: "
        "python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
        secret=True,
    ),
    ComposeVariable("AIRFLOW_API_SECRET_KEY", "Airflow API server's session signing key.", secret=True),
    ComposeVariable(
        "AIRFLOW_JWT_SECRET", "Key signing the JWTs of Airflow's API and its workers.", secret=True
    ),
    ComposeVariable(
        "AIRFLOW_EXECUTOR",
        "LocalExecutor, or CeleryExecutor together with --profile celery.",
        "LocalExecutor",
    ),
    ComposeVariable(
        "AIRFLOW_CELERY_BROKER_URL",
        "Celery broker of the CeleryExecutor; RabbitMQ instead: amqp://USER:PASSWORD@HOST:5672//.",
        "redis://redis:6379/0",
    ),
)

COMPOSE_SECTION_HEADER = (
    "# " + "-" * 98,
    "# Docker Compose only (docker-compose.yml reads these for ${...}; native processes never do).",
    "# `docker compose` refuses to start until every secret below is set, and so are ANCORA_ADMIN_TOKEN,",
    "# ANCORA_AIRFLOW_PASSWORD and ANCORA_REMOTE_JWT_SECRET above. Passwords end up in database URLs:",
    "# use letters, digits, '-', '_' and '.' only. One way to make one:",
    "#   python3 -c 'import secrets; print(secrets.token_hex(24))'",
    "",
)


def env_line(name: str, default: str, secret: bool) -> str:
    if secret:
        return f"# {name}={PLACEHOLDER}"
    return f"{name}={default}" if default != "" else f"# {name}="


def env_example() -> str:
    lines = [
        "# Ancora settings. Copy to .env and adjust; natively every variable is optional.",
        "# Generated by `ancora config env-example` from src/ancora/config/ and the compose variables in",
        "# src/ancora/settings_docs.py: edit those, not this.",
        "# Commented-out variables have a default derived at run time (see their comment).",
        "",
    ]
    for name, info in Settings.model_fields.items():
        lines.append(f"# {info.description}")
        lines.append(env_line(env_name(name), shown_default(info), is_secret(info)))
        lines.append("")
    lines.extend(COMPOSE_SECTION_HEADER)
    for variable in COMPOSE_VARIABLES:
        lines.append(f"# {variable.description}")
        lines.append(env_line(variable.name, variable.default, variable.secret))
        lines.append("")
    return "\n".join(lines)


def settings_table() -> str:
    rows = ["| variable | default | what it sets |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        rows.append(f"| `{env_name(name)}` | `{table_default(info)}` | {info.description} |")
    return "\n".join(rows)


TABLE_START = "<!-- settings-table:start -->"
TABLE_END = "<!-- settings-table:end -->"


def readme_with_settings_table(readme: str) -> str:
    """The README with the block between the settings-table markers replaced by the current table."""
    head, rest = readme.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    return f"{head}{TABLE_START}\n{settings_table()}\n{TABLE_END}{tail}"


def write_settings_docs(root: Path | None = None) -> None:
    root = root or require_checkout("Writing the settings docs into README.md")
    (root / ".env.example").write_text(env_example())
    readme = root / "README.md"
    readme.write_text(readme_with_settings_table(readme.read_text()))
