"""Reads and writes of the monitoring tables (prediction log, drift, alerts, service health).

They live in the events database beside the dispatches, upgraded by the same Alembic history, so
``open_monitoring_store`` on a fresh SQLite file or an empty MySQL database just works.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError

from ancora.dispatch.events import create_events_engine, upgrade_events_schema, utc
from ancora.monitoring.tables import alerts, drift_features, drift_reports, prediction_log, service_health
from ancora.schema import FEATURE_NAMES

PREDICTION_COLUMNS = tuple(column.name for column in prediction_log.columns if column.name != "id")
SQLITE_ROWS_PER_STATEMENT = 90
"""Rows per multi-row ``INSERT`` on SQLite: 90 rows of 11 values stay under 999 bound values, the
limit of SQLite builds before 3.32."""


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftReport:
    """One comparison of a collected batch or a served window with the champion's training data."""

    id: str
    kind: str
    subject: str
    window_start: datetime | None
    window_end: datetime | None
    created_at: datetime
    reference_version: str
    reference_run_id: str | None
    reference_rows: int
    current_rows: int
    features: tuple[FeatureDrift, ...]
    class_mix: Mapping[str, Mapping[str, float]]
    class_mix_score: float | None
    class_mix_drifted: bool
    share_drifted: float
    breached: bool
    artifact_uri: str | None = None

    @property
    def drifted_features(self) -> list[str]:
        return [feature.feature for feature in self.features if feature.drifted]


@dataclass(frozen=True)
class AlertRecord:
    id: int
    at: datetime
    kind: str
    dedupe_key: str
    summary: str
    detail: str | None
    notified: str


@dataclass(frozen=True)
class HealthState:
    service: str
    healthy: bool
    since: datetime
    checked_at: datetime
    detail: str | None

    def down_for_seconds(self, now: datetime) -> float:
        return 0.0 if self.healthy else (utc(now) - self.since).total_seconds()


@dataclass(frozen=True)
class DatabaseStatus:
    ok: bool
    backend: str
    latency_ms: float | None
    detail: str


def open_monitoring_store(url: str) -> MonitoringStore:
    engine = create_events_engine(url)
    upgrade_events_schema(engine)
    return MonitoringStore(engine)


class MonitoringStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- prediction log ----------------------------------------------------------------------------

    def insert_predictions(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows in ``PREDICTION_COLUMNS`` order, in one transaction.

        On SQLite, as multi-row ``INSERT``s of ``SQLITE_ROWS_PER_STATEMENT`` rows: ``executemany``
        takes and releases the GIL around every row's step, and each time waits for the busy event loop
        of the inference API to hand it back (measured beside a busy Python thread: 5-11 ms per row
        instead of 11 µs), so the log fell behind exactly under load and the loop was interrupted
        thousands of times a second. MySQL's and PostgreSQL's drivers already send an
        ``executemany`` of an ``INSERT`` as few statements.
        """
        if not rows:
            return
        with self.engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                for start in range(0, len(rows), SQLITE_ROWS_PER_STATEMENT):
                    chunk = rows[start : start + SQLITE_ROWS_PER_STATEMENT]
                    statement = _sqlite_multirow_insert(len(chunk))
                    connection.exec_driver_sql(statement, tuple(value for row in chunk for value in row))
            elif connection.dialect.positional:
                insert = prediction_log.insert().values(
                    {name: sa.bindparam(name) for name in PREDICTION_COLUMNS}
                )
                statement = str(insert.compile(dialect=connection.dialect))
                connection.exec_driver_sql(statement, list(rows))
            else:
                connection.execute(
                    prediction_log.insert(), [dict(zip(PREDICTION_COLUMNS, row, strict=True)) for row in rows]
                )

    def predictions(self, start: datetime, end: datetime, limit: int | None = None) -> pd.DataFrame:
        """Logged predictions with ``start <= at < end``: one column per feature, then the answer."""
        query = (
            sa.select(prediction_log)
            .where(prediction_log.c.at >= utc(start), prediction_log.c.at < utc(end))
            .order_by(prediction_log.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            result = connection.execute(query)
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        if frame.empty:
            return pd.DataFrame(columns=[*FEATURE_NAMES, *PREDICTION_COLUMNS])
        features = pd.DataFrame.from_records([json.loads(text) for text in frame["features"]])
        return pd.concat([features.reindex(columns=list(FEATURE_NAMES)), frame], axis=1)

    def prediction_counts(self, since: datetime) -> pd.DataFrame:
        """Predictions per hour and model version since ``since`` (for the Monitor page)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(
                    prediction_log.c.at, prediction_log.c.model_version, prediction_log.c.predicted_class
                )
                .where(prediction_log.c.at >= utc(since))
                .order_by(prediction_log.c.id)
            ).all()
        return pd.DataFrame(rows, columns=["at", "model_version", "predicted_class"])

    def count_request(self, request_id: str) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    sa.select(sa.func.count()).where(prediction_log.c.request_id == request_id)
                ).scalar_one()
            )

    # --- drift ---------------------------------------------------------------------------------------

    def save_drift(self, report: DriftReport) -> None:
        """Replaces an earlier report of the same subject against the same champion (a rerun)."""
        key = (
            (drift_reports.c.kind == report.kind)
            & (drift_reports.c.subject == report.subject)
            & (drift_reports.c.reference_version == report.reference_version)
        )
        with self.engine.begin() as connection:
            old = connection.execute(sa.select(drift_reports.c.id).where(key)).scalars().all()
            if old:
                connection.execute(drift_features.delete().where(drift_features.c.report_id.in_(old)))
                connection.execute(drift_reports.delete().where(drift_reports.c.id.in_(old)))
            connection.execute(
                drift_reports.insert().values(
                    id=report.id,
                    kind=report.kind,
                    subject=report.subject,
                    window_start=report.window_start,
                    window_end=report.window_end,
                    created_at=report.created_at,
                    reference_version=report.reference_version,
                    reference_run_id=report.reference_run_id,
                    reference_rows=report.reference_rows,
                    current_rows=report.current_rows,
                    feature_count=len(report.features),
                    drifted_features=len(report.drifted_features),
                    share_drifted=report.share_drifted,
                    class_mix_score=report.class_mix_score,
                    class_mix_drifted=report.class_mix_drifted,
                    breached=report.breached,
                    class_mix=json.dumps(report.class_mix, sort_keys=True),
                    artifact_uri=report.artifact_uri,
                )
            )
            connection.execute(
                drift_features.insert(),
                [{"report_id": report.id, **feature.__dict__} for feature in report.features],
            )

    def set_drift_artifact(self, report_id: str, uri: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                drift_reports.update().where(drift_reports.c.id == report_id).values(artifact_uri=uri)
            )

    def drift_reports(self, since: datetime, kind: str | None = None) -> pd.DataFrame:
        query = sa.select(drift_reports).where(drift_reports.c.created_at >= utc(since))
        if kind is not None:
            query = query.where(drift_reports.c.kind == kind)
        with self.engine.connect() as connection:
            result = connection.execute(query.order_by(drift_reports.c.created_at))
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        if not frame.empty:
            frame["created_at"] = frame["created_at"].map(utc)
        return frame

    def drift_history(self, since: datetime) -> pd.DataFrame:
        """One row per report and feature: when, which kind, the score, its threshold, drifted or not."""
        query = (
            sa.select(
                drift_reports.c.id.label("report_id"),
                drift_reports.c.created_at,
                drift_reports.c.kind,
                drift_reports.c.subject,
                drift_reports.c.reference_version,
                drift_features.c.feature,
                drift_features.c.method,
                drift_features.c.score,
                drift_features.c.threshold,
                drift_features.c.drifted,
            )
            .join(drift_features, drift_features.c.report_id == drift_reports.c.id)
            .where(drift_reports.c.created_at >= utc(since))
            .order_by(drift_reports.c.created_at, drift_features.c.feature)
        )
        with self.engine.connect() as connection:
            result = connection.execute(query)
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        if not frame.empty:
            frame["created_at"] = frame["created_at"].map(utc)
        return frame

    # --- alerts --------------------------------------------------------------------------------------

    def record_alert(
        self, at: datetime, kind: str, dedupe_key: str, summary: str, detail: str | None
    ) -> bool:
        """True when this alert is new; False when the same key was raised before (do not notify again)."""
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    alerts.insert().values(
                        at=at, kind=kind, dedupe_key=dedupe_key, summary=summary, detail=detail, notified=""
                    )
                )
        except IntegrityError:
            return False
        return True

    def set_notified(self, dedupe_key: str, channels: Iterable[str]) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                alerts.update()
                .where(alerts.c.dedupe_key == dedupe_key)
                .values(notified=",".join(sorted(channels)))
            )

    def alerts(self, since: datetime, limit: int = 200) -> list[AlertRecord]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(alerts).where(alerts.c.at >= utc(since)).order_by(alerts.c.at.desc()).limit(limit)
            ).mappings()
            return [AlertRecord(**{**row, "at": utc(row["at"])}) for row in rows]

    # --- service health over time --------------------------------------------------------------------

    def observe_health(self, service: str, healthy: bool, detail: str | None, now: datetime) -> HealthState:
        """Record one probe; ``since`` moves only when the state flips, so it says how long it holds."""
        now = utc(now)
        with self.engine.begin() as connection:
            row = (
                connection.execute(sa.select(service_health).where(service_health.c.service == service))
                .mappings()
                .first()
            )
            if row is None:
                connection.execute(
                    service_health.insert().values(
                        service=service, healthy=healthy, since=now, checked_at=now, detail=detail
                    )
                )
                since = now
            else:
                since = now if bool(row["healthy"]) != healthy else utc(row["since"])
                connection.execute(
                    service_health.update()
                    .where(service_health.c.service == service)
                    .values(healthy=healthy, since=since, checked_at=now, detail=detail)
                )
        return HealthState(service, healthy, since, now, detail)

    def health_states(self) -> list[HealthState]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(service_health).order_by(service_health.c.service)).mappings()
            return [
                HealthState(
                    row["service"],
                    bool(row["healthy"]),
                    utc(row["since"]),
                    utc(row["checked_at"]),
                    row["detail"],
                )
                for row in rows
            ]

    # --- the database itself -------------------------------------------------------------------------

    def status(self) -> DatabaseStatus:
        """Whether the events database answers a trivial query, and how fast."""
        backend = self.engine.url.get_backend_name()
        started = time.perf_counter()
        try:
            with self.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as problem:
            return DatabaseStatus(False, backend, None, str(problem.__cause__ or problem).splitlines()[0])
        latency = (time.perf_counter() - started) * 1000
        return DatabaseStatus(True, backend, latency, f"{backend} answers")


@functools.lru_cache(maxsize=SQLITE_ROWS_PER_STATEMENT)
def _sqlite_multirow_insert(rows: int) -> str:
    """``INSERT ... VALUES (?, ...), (?, ...)`` for ``rows`` rows, values row by row in column order.

    The one-row statement is compiled by SQLAlchemy once and its value group repeated: compiling a
    90-row statement took tens of milliseconds of the writer's GIL time for each new chunk size.
    """
    head, group = _sqlite_insert_parts()
    return head + ", ".join([group] * rows)


@functools.cache
def _sqlite_insert_parts() -> tuple[str, str]:
    one_row: dict[str, Any] = {name: sa.bindparam(name) for name in PREDICTION_COLUMNS}
    compiled = prediction_log.insert().values(one_row).compile(dialect=sqlite.dialect())
    if tuple(compiled.positiontup or ()) != PREDICTION_COLUMNS:
        raise RuntimeError("the prediction log's INSERT binds its values in an unexpected order")
    head, separator, group = str(compiled).partition(" VALUES ")
    return head + separator, group
