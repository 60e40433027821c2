"""The dispatch events database: what every dispatch did, read by the API, the UI and operators.

A dispatch is one row with its counters and state; its events are a timeline (``started``,
``collected``, ``predicted``, ``persisted``, then ``finished`` or ``failed``); its predictions are
one row per datalake row it handled, in reading order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url

from ancora.dispatch.tables import dispatch_events, dispatch_predictions, dispatches

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

DispatchState = Literal["running", "succeeded", "failed"]
EventName = Literal["started", "collected", "predicted", "persisted", "finished", "failed"]
PredictionStatus = Literal["ok", "invalid"]


@dataclass(frozen=True)
class DispatchRecord:
    id: str
    dag_run_id: str | None
    started_at: datetime
    ended_at: datetime | None
    model_name: str | None
    model_version: str | None
    datalake_table: str
    rows_read: int
    rows_predicted: int
    rows_invalid: int
    rows_written: int
    state: DispatchState
    error: str | None
    heartbeat_at: datetime | None = None
    host: str | None = None
    pid: int | None = None
    pid_start_ticks: int | None = None


@dataclass(frozen=True)
class Owner:
    """The process running a dispatch: the next dispatch checks it is still alive."""

    host: str
    pid: int
    pid_start_ticks: int | None


@dataclass(frozen=True)
class EventRecord:
    event: EventName
    at: datetime
    detail: str | None


@dataclass(frozen=True)
class PredictionRecord:
    row_key: str
    predicted_class: int | None
    status: PredictionStatus
    error: str | None


@dataclass(frozen=True)
class DispatchDetail:
    dispatch: DispatchRecord
    events: list[EventRecord]
    predictions: list[PredictionRecord]


class RowPrediction(NamedTuple):
    """One row a dispatch handled, as written: its reading position, key, class or error."""

    position: int
    row_key: str
    predicted_class: int | None
    status: PredictionStatus
    error: str | None


@dataclass(frozen=True)
class Counters:
    rows_read: int = 0
    rows_predicted: int = 0
    rows_invalid: int = 0
    rows_written: int = 0


def utc(value: datetime) -> datetime:
    """Timestamps come back naive from SQLite and MySQL; they were written in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def create_events_engine(url: str) -> Engine:
    """An engine for the events database; creates the folder of a SQLite file so a fresh state dir works."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_wal)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_recycle=3600)


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    """Write-ahead log: the API reads the history while a dispatch writes it, without "database is
    locked"; and a batch's commit appends to the log instead of rewriting pages (synchronous=NORMAL
    is still durable across an application crash)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def upgrade_events_schema(engine: Engine, revision: str = "head") -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def open_events_store(url: str) -> EventsStore:
    """The events store at its newest schema: a fresh SQLite file or an empty MySQL database just works."""
    engine = create_events_engine(url)
    upgrade_events_schema(engine)
    return EventsStore(engine)


class EventsStore:
    """Writes a dispatch's timeline as it goes, and reads dispatches back by time window or id."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(
        self, dispatch_id: str, dag_run_id: str | None, table: str, detail: str, owner: Owner | None = None
    ) -> datetime:
        at = datetime.now(UTC)
        with self.engine.begin() as connection:
            connection.execute(
                dispatches.insert().values(
                    id=dispatch_id,
                    dag_run_id=dag_run_id,
                    started_at=at,
                    datalake_table=table,
                    rows_read=0,
                    rows_predicted=0,
                    rows_invalid=0,
                    rows_written=0,
                    state="running",
                    heartbeat_at=at,
                    host=owner.host if owner else None,
                    pid=owner.pid if owner else None,
                    pid_start_ticks=owner.pid_start_ticks if owner else None,
                )
            )
            self._insert_events(connection, dispatch_id, [("started", at, detail)])
        return at

    def beat(self, dispatch_id: str) -> None:
        """The dispatch is alive: its heartbeat moves (only while it is ``running``)."""
        with self.engine.begin() as connection:
            connection.execute(
                dispatches.update()
                .where(dispatches.c.id == dispatch_id, dispatches.c.state == "running")
                .values(heartbeat_at=datetime.now(UTC))
            )

    def running(self) -> list[DispatchRecord]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(dispatches).where(dispatches.c.state == "running"))
            return [_dispatch(row) for row in rows.mappings()]

    def recorded_keys(self, dispatch_id: str) -> tuple[set[str], int]:
        """The row keys a dispatch recorded, and the next free reading position."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(dispatch_predictions.c.row_key, dispatch_predictions.c.position).where(
                    dispatch_predictions.c.dispatch_id == dispatch_id
                )
            ).all()
        return {key for key, _ in rows}, max((position for _, position in rows), default=-1) + 1

    def fail_dead(
        self,
        dispatch_id: str,
        reason: str,
        recovered: Sequence[RowPrediction],
        added: Counters,
        recovered_detail: str | None,
    ) -> bool:
        """Mark a dispatch whose process died ``failed``, with the rows it committed to the datalake but
        never recorded; one transaction, and only if it is still ``running`` (False when another
        dispatch got there first)."""
        at = datetime.now(UTC)
        columns = dispatches.c
        with self.engine.begin() as connection:
            claimed = connection.execute(
                dispatches.update()
                .where(columns.id == dispatch_id, columns.state == "running")
                .values(
                    state="failed",
                    ended_at=at,
                    error=reason,
                    rows_read=columns.rows_read + added.rows_read,
                    rows_predicted=columns.rows_predicted + added.rows_predicted,
                    rows_invalid=columns.rows_invalid + added.rows_invalid,
                    rows_written=columns.rows_written + added.rows_written,
                )
            )
            if claimed.rowcount != 1:
                connection.rollback()
                return False
            if recovered:
                _insert_predictions(connection, dispatch_id, recovered)
            events: list[tuple[EventName, datetime, str | None]] = []
            if recovered_detail:
                events.append(("persisted", at, recovered_detail))
            events.append(("failed", at, reason))
            self._insert_events(connection, dispatch_id, events)
        return True

    def set_model(self, dispatch_id: str, name: str, version: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                dispatches.update()
                .where(dispatches.c.id == dispatch_id)
                .values(model_name=name, model_version=version)
            )

    def record_batch(
        self,
        dispatch_id: str,
        events: Sequence[tuple[EventName, datetime, str | None]],
        predictions: Sequence[RowPrediction],
        counters: Counters,
    ) -> None:
        """A batch's events, its rows' predictions and the dispatch's running totals, in one transaction."""
        with self.engine.begin() as connection:
            self._insert_events(connection, dispatch_id, events)
            if predictions:
                _insert_predictions(connection, dispatch_id, predictions)
            connection.execute(
                dispatches.update().where(dispatches.c.id == dispatch_id).values(**counters.__dict__)
            )

    def finish(
        self,
        dispatch_id: str,
        state: Literal["succeeded", "failed"],
        events: Sequence[tuple[EventName, datetime, str | None]],
        error: str | None = None,
    ) -> datetime:
        at = datetime.now(UTC)
        with self.engine.begin() as connection:
            self._insert_events(connection, dispatch_id, events)
            connection.execute(
                dispatches.update()
                .where(dispatches.c.id == dispatch_id)
                .values(state=state, ended_at=at, error=error)
            )
        return at

    def list_dispatches(
        self, start: datetime, end: datetime, state: DispatchState | None = None, limit: int = 1000
    ) -> list[DispatchRecord]:
        """Dispatches that started inside [start, end], newest first (naive times are taken as UTC)."""
        start, end = utc(start), utc(end)
        query = (
            sa.select(dispatches)
            .where(dispatches.c.started_at >= start, dispatches.c.started_at <= end)
            .order_by(dispatches.c.started_at.desc())
            .limit(limit)
        )
        if state is not None:
            query = query.where(dispatches.c.state == state)
        with self.engine.connect() as connection:
            return [_dispatch(row) for row in connection.execute(query).mappings()]

    def get(self, dispatch_id: str) -> DispatchDetail | None:
        with self.engine.connect() as connection:
            row = (
                connection.execute(sa.select(dispatches).where(dispatches.c.id == dispatch_id))
                .mappings()
                .first()
            )
            if row is None:
                return None
            events = connection.execute(
                sa.select(dispatch_events.c.event, dispatch_events.c.at, dispatch_events.c.detail)
                .where(dispatch_events.c.dispatch_id == dispatch_id)
                .order_by(dispatch_events.c.id)
            ).all()
            predictions = connection.execute(
                sa.select(
                    dispatch_predictions.c.row_key,
                    dispatch_predictions.c.predicted_class,
                    dispatch_predictions.c.status,
                    dispatch_predictions.c.error,
                )
                .where(dispatch_predictions.c.dispatch_id == dispatch_id)
                .order_by(dispatch_predictions.c.position)
            ).all()
        return DispatchDetail(
            dispatch=_dispatch(row),
            events=[EventRecord(event, utc(at), detail) for event, at, detail in events],
            predictions=[PredictionRecord(*prediction) for prediction in predictions],
        )

    def _insert_events(
        self,
        connection: Connection,
        dispatch_id: str,
        events: Sequence[tuple[EventName, datetime, str | None]],
    ) -> None:
        if events:
            connection.execute(
                dispatch_events.insert(),
                [
                    {"dispatch_id": dispatch_id, "event": event, "at": at, "detail": detail}
                    for event, at, detail in events
                ],
            )


def _insert_predictions(
    connection: Connection, dispatch_id: str, predictions: Sequence[RowPrediction]
) -> None:
    """Straight to the driver's executemany where parameters are positional (SQLite, MySQL): building
    SQLAlchemy's parameter dicts for 100,000 rows costs more than the insert itself."""
    if connection.dialect.positional:
        statement = str(dispatch_predictions.insert().compile(dialect=connection.dialect))
        connection.exec_driver_sql(statement, [(dispatch_id, *prediction) for prediction in predictions])
        return
    connection.execute(
        dispatch_predictions.insert(),
        [{"dispatch_id": dispatch_id, **prediction._asdict()} for prediction in predictions],
    )


def _dispatch(row: sa.RowMapping) -> DispatchRecord:
    values = dict(row)
    values["started_at"] = utc(values["started_at"])
    for name in ("ended_at", "heartbeat_at"):
        if values[name] is not None:
            values[name] = utc(values[name])
    return DispatchRecord(**values)
