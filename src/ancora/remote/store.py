"""Tasks and users of the task service, in the configured database (SQLite natively, MySQL in compose).

The schema is migrated with Alembic under its own version table (``ancora.remote.tables``); a database
made by the service's earlier ``create_all`` is stamped at the first revision and upgraded. A SQLite
file is created readable by its owner only: it holds password hashes.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from ancora.remote.status import TaskStatus
from ancora.remote.tables import VERSION_TABLE, tasks, users
from ancora.store.database import alembic_config, create_store_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
BASELINE_REVISION = "0001"


def now() -> datetime:
    return datetime.now(UTC)


def new_task_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class User:
    username: str
    password_hash: str
    is_admin: bool
    token_version: int = 0


@dataclass(frozen=True)
class Task:
    id: str
    owner: str
    dataset_name: str
    runner_location: str
    runner_kind: str
    execution_mode: str
    experiment_name: str
    execution_command: str
    tracking_uri: str | None
    instance_type: str
    account: str
    model_params: dict[str, Any]
    status: TaskStatus
    job_id: str | None
    airflow_run_id: str | None
    work_dir: str | None
    local_dir: str
    mlflow_run_id: str | None
    detail: str
    log_tail: str | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    disk_bytes: int = 0
    purged_at: datetime | None = None

    @classmethod
    def from_row(cls, row: sa.RowMapping) -> Task:
        values = dict(row)
        values["model_params"] = json.loads(values["model_params"])
        values["status"] = TaskStatus(values["status"])
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """What the API shows: everything but the service's own folder."""
        return {
            "id": self.id,
            "job_id": self.airflow_run_id or self.job_id,
            "owner": self.owner,
            "status": self.status.value,
            "dataset_name": self.dataset_name,
            "runner_location": self.runner_location,
            "runner_kind": self.runner_kind,
            "execution_mode": self.execution_mode,
            "experiment_name": self.experiment_name,
            "execution_command": self.execution_command,
            "tracking_uri": self.tracking_uri,
            "instance_type": self.instance_type,
            "account": self.account,
            "model_params": self.model_params,
            "external_job_id": self.job_id,
            "airflow_run_id": self.airflow_run_id,
            "work_dir": self.work_dir,
            "run_id": self.mlflow_run_id,
            "detail": self.detail,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "purged_at": self.purged_at.isoformat() if self.purged_at else None,
        }


class TaskStore:
    """Keyed reads and writes of tasks and users; every write stamps ``updated_at``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> TaskStore:
        """The store at its newest schema; a fresh SQLite file or an empty MySQL database just works."""
        _create_private_sqlite_file(url)
        engine = create_store_engine(url)
        upgrade_schema(engine)
        return cls(engine)

    def add_user(self, username: str, password_hash: str, is_admin: bool) -> bool:
        """Create a user, or reset an existing one's password and role; True when it was created.

        A reset raises the user's token version, so every token issued before it stops working."""
        with self.engine.begin() as connection:
            updated = connection.execute(
                users.update()
                .where(users.c.username == username)
                .values(
                    password_hash=password_hash,
                    is_admin=is_admin,
                    token_version=users.c.token_version + 1,
                )
            )
            if updated.rowcount:
                return False
            connection.execute(
                users.insert().values(
                    username=username,
                    password_hash=password_hash,
                    is_admin=is_admin,
                    created_at=now(),
                    token_version=0,
                )
            )
        return True

    def remove_user(self, username: str) -> bool:
        """Delete a user (their tokens stop working; their tasks stay, visible to admins)."""
        with self.engine.begin() as connection:
            return bool(connection.execute(users.delete().where(users.c.username == username)).rowcount)

    def list_users(self) -> list[User]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(users).order_by(users.c.username)).mappings().all()
        return [_user(row) for row in rows]

    def get_user(self, username: str) -> User | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(users).where(users.c.username == username)).mappings().first()
        return _user(row) if row is not None else None

    def disk_usage(self, owner: str) -> int:
        """Bytes the owner's kept task files use (purged tasks count nothing)."""
        query = sa.select(sa.func.coalesce(sa.func.sum(tasks.c.disk_bytes), 0)).where(
            tasks.c.owner == owner, tasks.c.purged_at.is_(None)
        )
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def expired(self, finished_before: datetime) -> list[Task]:
        """Finished tasks whose files are still kept and are older than the retention allows."""
        finished = [status.value for status in TaskStatus if status.finished]
        query = sa.select(tasks).where(
            tasks.c.status.in_(finished),
            tasks.c.purged_at.is_(None),
            tasks.c.finished_at < finished_before,
        )
        with self.engine.connect() as connection:
            return [Task.from_row(row) for row in connection.execute(query).mappings()]

    def create_task(self, **values: Any) -> Task:
        stamp = now()
        values = {
            **values,
            "model_params": json.dumps(values["model_params"], sort_keys=True),
            "status": TaskStatus.PENDING.value,
            "detail": values.get("detail", "accepted"),
            "cancel_requested": False,
            "created_at": stamp,
            "updated_at": stamp,
        }
        with self.engine.begin() as connection:
            connection.execute(tasks.insert().values(**values))
        return self.get(values["id"])

    def find(self, task_id: str) -> Task | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(tasks).where(tasks.c.id == task_id)).mappings().first()
        return Task.from_row(row) if row is not None else None

    def get(self, task_id: str) -> Task:
        task = self.find(task_id)
        if task is None:
            raise KeyError(task_id)
        return task

    def list_tasks(self, owner: str | None = None, limit: int = 200) -> list[Task]:
        query = sa.select(tasks).order_by(tasks.c.created_at.desc()).limit(limit)
        if owner is not None:
            query = query.where(tasks.c.owner == owner)
        with self.engine.connect() as connection:
            return [Task.from_row(row) for row in connection.execute(query).mappings()]

    def unfinished(self) -> list[Task]:
        finished = [status.value for status in TaskStatus if status.finished]
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(tasks).where(tasks.c.status.not_in(finished))).mappings()
            return [Task.from_row(row) for row in rows]

    def update(self, task_id: str, **values: Any) -> Task:
        if "status" in values:
            status = TaskStatus(values["status"])
            values["status"] = status.value
            if status.finished:
                values.setdefault("finished_at", now())
        with self.engine.begin() as connection:
            connection.execute(tasks.update().where(tasks.c.id == task_id).values(**values, updated_at=now()))
        return self.get(task_id)

    def finish_once(self, task_id: str, status: TaskStatus, **values: Any) -> bool:
        """Record an outcome unless another follower already did; True when this call recorded it."""
        finished = [item.value for item in TaskStatus if item.finished]
        with self.engine.begin() as connection:
            result = connection.execute(
                tasks.update()
                .where(tasks.c.id == task_id, tasks.c.status.not_in(finished))
                .values(**values, status=status.value, finished_at=now(), updated_at=now())
            )
        return bool(result.rowcount)


def _user(row: sa.RowMapping) -> User:
    return User(
        username=row["username"],
        password_hash=row["password_hash"],
        is_admin=bool(row["is_admin"]),
        token_version=int(row["token_version"]),
    )


def _create_private_sqlite_file(url: str) -> None:
    """Create a SQLite database file 0600 (and its folder 0700) before SQLite creates it 0644."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Bring the tables to ``revision``; tables made before migrations existed are stamped first."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        existing = set(sa.inspect(connection).get_table_names())
        if "remote_tasks" in existing and VERSION_TABLE not in existing:
            command.stamp(config, BASELINE_REVISION)
        command.upgrade(config, revision)
