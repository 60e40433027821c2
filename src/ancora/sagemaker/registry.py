"""The BYOM pipeline registry: every provisioning request, its state, and the endpoints it deployed.

Two small tables in their own database (``ANCORA_PROVISIONING_DB_URL``, SQLite natively), created with
``create_all``: the provisioning service is their only writer and the schema is young; it moves to
Alembic like the raw store the day it needs a migration.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from ancora.store.database import create_store_engine

metadata = sa.MetaData()

pipelines = sa.Table(
    "byom_pipelines",
    metadata,
    sa.Column("pipeline_id", sa.String(32), primary_key=True),
    sa.Column("pipeline_type", sa.String(32), nullable=False),
    sa.Column("target", sa.String(16), nullable=False),
    sa.Column("model_name", sa.String(63), nullable=False),
    sa.Column("endpoint_name", sa.String(63), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False, default=""),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

endpoints = sa.Table(
    "byom_endpoints",
    metadata,
    sa.Column("endpoint_name", sa.String(63), primary_key=True),
    sa.Column("target", sa.String(16), nullable=False),
    sa.Column("pipeline_id", sa.String(32), nullable=False),
    sa.Column("details", sa.Text, nullable=False, default="{}"),
    sa.Column("data_capture_location", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


class PipelineStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    DELETED = "Deleted"


@dataclass(frozen=True)
class Pipeline:
    pipeline_id: str
    pipeline_type: str
    target: str
    model_name: str
    endpoint_name: str | None
    status: PipelineStatus
    message: str
    request: dict[str, Any]
    details: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Endpoint:
    endpoint_name: str
    target: str
    pipeline_id: str
    details: dict[str, Any]
    data_capture_location: str | None


def _now() -> datetime:
    return datetime.now(UTC)


class PipelineRegistry:
    def __init__(self, url: str) -> None:
        self.engine = create_store_engine(url)
        metadata.create_all(self.engine)

    def create(
        self,
        *,
        pipeline_type: str,
        target: str,
        model_name: str,
        endpoint_name: str | None,
        request: dict[str, Any],
    ) -> Pipeline:
        now = _now()
        pipeline_id = uuid.uuid4().hex
        row = {
            "pipeline_id": pipeline_id,
            "pipeline_type": pipeline_type,
            "target": target,
            "model_name": model_name,
            "endpoint_name": endpoint_name,
            "status": PipelineStatus.IN_PROGRESS.value,
            "message": "provisioning",
            "request": json.dumps(request, sort_keys=True),
            "details": "{}",
            "created_at": now,
            "updated_at": now,
        }
        with self.engine.begin() as connection:
            connection.execute(pipelines.insert().values(**row))
        created = self.get(pipeline_id)
        assert created is not None
        return created

    def update(
        self,
        pipeline_id: str,
        *,
        status: PipelineStatus | None = None,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        only_if: PipelineStatus | None = None,
    ) -> bool:
        """Change a pipeline; with ``only_if``, only while it still has that status (a batch job that
        ends after its pipeline was deleted must not bring it back). True when a row changed."""
        values: dict[str, Any] = {"updated_at": _now()}
        if status is not None:
            values["status"] = status.value
        if message is not None:
            values["message"] = message
        if details is not None:
            values["details"] = json.dumps(details, sort_keys=True)
        condition = pipelines.c.pipeline_id == pipeline_id
        if only_if is not None:
            condition = condition & (pipelines.c.status == only_if.value)
        with self.engine.begin() as connection:
            return bool(connection.execute(pipelines.update().where(condition).values(**values)).rowcount)

    def get(self, pipeline_id: str) -> Pipeline | None:
        with self.engine.connect() as connection:
            row = connection.execute(pipelines.select().where(pipelines.c.pipeline_id == pipeline_id)).first()
        if row is None:
            return None
        return Pipeline(
            pipeline_id=row.pipeline_id,
            pipeline_type=row.pipeline_type,
            target=row.target,
            model_name=row.model_name,
            endpoint_name=row.endpoint_name,
            status=PipelineStatus(row.status),
            message=row.message,
            request=json.loads(row.request),
            details=json.loads(row.details),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def in_progress(self) -> list[str]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(pipelines.c.pipeline_id).where(
                    pipelines.c.status == PipelineStatus.IN_PROGRESS.value
                )
            )
            return [row.pipeline_id for row in rows]

    def deployed_to(self, endpoint_name: str) -> list[str]:
        """Pipelines that deployed to an endpoint and are not deleted, oldest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(pipelines.c.pipeline_id)
                .where(
                    (pipelines.c.endpoint_name == endpoint_name)
                    & (pipelines.c.status != PipelineStatus.DELETED.value)
                )
                .order_by(pipelines.c.created_at)
            )
            return [row.pipeline_id for row in rows]

    def endpoint(self, name: str) -> Endpoint | None:
        with self.engine.connect() as connection:
            row = connection.execute(endpoints.select().where(endpoints.c.endpoint_name == name)).first()
        if row is None:
            return None
        return Endpoint(
            endpoint_name=row.endpoint_name,
            target=row.target,
            pipeline_id=row.pipeline_id,
            details=json.loads(row.details),
            data_capture_location=row.data_capture_location,
        )

    def endpoints(self) -> list[Endpoint]:
        with self.engine.connect() as connection:
            names = [row.endpoint_name for row in connection.execute(sa.select(endpoints.c.endpoint_name))]
        return [endpoint for name in names if (endpoint := self.endpoint(name)) is not None]

    def put_endpoint(
        self,
        name: str,
        *,
        target: str,
        pipeline_id: str,
        details: dict[str, Any],
        data_capture_location: str | None,
    ) -> None:
        """Insert or replace: provisioning an endpoint name again points it at the new pipeline."""
        values = {
            "target": target,
            "pipeline_id": pipeline_id,
            "details": json.dumps(details, sort_keys=True),
            "data_capture_location": data_capture_location,
            "updated_at": _now(),
        }
        with self.engine.begin() as connection:
            updated = connection.execute(
                endpoints.update().where(endpoints.c.endpoint_name == name).values(**values)
            ).rowcount
            if not updated:
                connection.execute(endpoints.insert().values(endpoint_name=name, **values))

    def remove_endpoint(self, name: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(endpoints.delete().where(endpoints.c.endpoint_name == name))

    def dispose(self) -> None:
        self.engine.dispose()
