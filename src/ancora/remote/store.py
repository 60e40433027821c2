"""Tasks and users of the task service, in the configured database (SQLite natively, MySQL in compose).

The tables have their own metadata, so the service can share a database with the raw-data store
without either schema knowing the other; ``create_all`` is enough while the schema is this young.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from ancora.remote.status import TaskStatus
from ancora.store.database import create_store_engine

metadata = sa.MetaData()

users = sa.Table(
    "remote_users",
    metadata,
    sa.Column("username", sa.String(150), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

tasks = sa.Table(
    "remote_tasks",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(150), nullable=False, index=True),
    sa.Column("dataset_name", sa.String(200), nullable=False),
    sa.Column("runner_location", sa.String(100), nullable=False),
    sa.Column("runner_kind", sa.String(32), nullable=False),
    sa.Column("execution_mode", sa.String(16), nullable=False),
    sa.Column("experiment_name", sa.String(200), nullable=False),
    sa.Column("execution_command", sa.Text, nullable=False),
    sa.Column("tracking_uri", sa.Text, nullable=True),
    sa.Column("instance_type", sa.String(64), nullable=False),
    sa.Column("account", sa.String(200), nullable=False),
    sa.Column("model_params", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("job_id", sa.String(64), nullable=True),
    sa.Column("airflow_run_id", sa.String(250), nullable=True),
    sa.Column("work_dir", sa.Text, nullable=True),
    sa.Column("local_dir", sa.Text, nullable=False),
    sa.Column("mlflow_run_id", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text, nullable=False, default=""),
    sa.Column("log_tail", sa.Text, nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
)


def now() -> datetime:
    return datetime.now(UTC)


def new_task_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class User:
    username: str
    password_hash: str
    is_admin: bool


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
        }


class TaskStore:
    """Keyed reads and writes of tasks and users; every write stamps ``updated_at``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> TaskStore:
        engine = create_store_engine(url)
        metadata.create_all(engine, checkfirst=True)
        return cls(engine)

    def add_user(self, username: str, password_hash: str, is_admin: bool) -> None:
        """Create or replace a user (replacing is how a password is reset)."""
        with self.engine.begin() as connection:
            connection.execute(users.delete().where(users.c.username == username))
            connection.execute(
                users.insert().values(
                    username=username, password_hash=password_hash, is_admin=is_admin, created_at=now()
                )
            )

    def get_user(self, username: str) -> User | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(users).where(users.c.username == username)).mappings().first()
        if row is None:
            return None
        return User(username=row["username"], password_hash=row["password_hash"], is_admin=row["is_admin"])

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
