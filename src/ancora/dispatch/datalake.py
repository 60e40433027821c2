"""The datalake side of a dispatch: which rows await a prediction, and writing predictions back.

Any database SQLAlchemy reaches works (MySQL/MariaDB, PostgreSQL, SQLite, ODBC data sources through
pyodbc): the queries are SQLAlchemy Core on a table described by settings. One exception, for speed:
MySQL and MariaDB return a page of awaiting rows as one JSON document that the server builds
(``JSON_ARRAY`` per row, ``GROUP_CONCAT`` over the page). PyMySQL decodes every value of a result in
Python, about 2 CPU-seconds per 100,000 rows of 13 values, the largest cost of a dispatch after the
model; the server's JSON and ``json.loads`` cost a third of that together. A page the document cannot
carry exactly (longer than ``group_concat_max_len``, bytes that are not UTF-8) is read row by row.

A row awaits a prediction while its prediction column is NULL (and its marker column, if there is
one, too). Every write is guarded by that same condition, so a batch written twice, by a retry or by a
second dispatch that read the same rows, changes nothing the second time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ancora.config import DispatchSettings
from ancora.schema import FEATURE_NAMES

IN_LIST_ROWS = 1000
"""Keys per UPDATE ... WHERE key IN (...): under every driver's parameter limit (SQL Server: 2100)."""

JSON_PAGE_DIALECTS = frozenset({"mysql", "mariadb"})
"""Dialects whose pages are read as one JSON document (see the module's docstring); ``JSON_ARRAY``
needs MySQL 5.7.8 or MariaDB 10.2.3 and later."""

_JSON_PAGE_SESSION = "ancora_json_pages"
"""Holds, on a pooled connection, the ``group_concat_max_len`` its session was given: set once per
connection, again only for a datalake that asks for another."""


class DatalakeConfigError(ValueError):
    """A datalake setting that cannot work; the message names the variable."""


class DatalakeError(RuntimeError):
    """The datalake could not be reached, or a statement on it failed (down, lost, table gone)."""


@dataclass(frozen=True)
class DatalakeLayout:
    """Where the rows are and which columns hold what, from the ANCORA_DATALAKE_* settings."""

    table: str
    schema: str | None
    key: str
    features: Mapping[str, str]
    """Contract feature name -> the table's column."""
    prediction: str
    marker: str | None

    @classmethod
    def from_settings(cls, settings: DispatchSettings) -> DatalakeLayout:
        schema, _, table = settings.datalake_table.rpartition(".")
        if not table.strip():
            raise DatalakeConfigError("ANCORA_DATALAKE_TABLE is empty")
        features = dict(zip(FEATURE_NAMES, FEATURE_NAMES, strict=True))
        features.update(settings.datalake_feature_columns)
        for variable, value in (
            ("ANCORA_DATALAKE_KEY_COLUMN", settings.datalake_key_column),
            ("ANCORA_DATALAKE_PREDICTION_COLUMN", settings.datalake_prediction_column),
        ):
            if not value.strip():
                raise DatalakeConfigError(f"{variable} is empty")
        return cls(
            table=table,
            schema=schema or None,
            key=settings.datalake_key_column,
            features=features,
            prediction=settings.datalake_prediction_column,
            marker=settings.datalake_marker_column.strip() or None,
        )

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table


@dataclass(frozen=True)
class PendingBatch:
    """Rows awaiting a prediction, column by column, in key order."""

    keys: list[Any]
    columns: dict[str, list[Any]]
    """Contract feature name -> the values of that column."""

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class MarkedBatch(PendingBatch):
    """Rows a dispatch wrote (its id in the marker column), with what it wrote: a class, or None for a
    row it found invalid."""

    predictions: list[int | None]


@dataclass(frozen=True)
class DatalakeStatus:
    ok: bool
    table: str
    latency_ms: float | None
    pending_rows: int | None
    error: str | None


def create_datalake_engine(url: str, connect_timeout_seconds: int) -> Engine:
    """An engine whose connection attempts give up after the timeout, whatever the driver."""
    parsed = make_url(url)
    driver = parsed.get_driver_name()
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return sa.create_engine(url, connect_args={"timeout": connect_timeout_seconds})
    connect_args: dict[str, Any] = {}
    if driver in ("pymysql", "mysqldb", "mariadbconnector"):
        connect_args["connect_timeout"] = connect_timeout_seconds
    elif driver in ("psycopg", "psycopg2", "pg8000"):
        connect_args["connect_timeout" if driver != "pg8000" else "timeout"] = connect_timeout_seconds
    elif driver == "pyodbc":
        connect_args["timeout"] = connect_timeout_seconds
    return sa.create_engine(url, pool_pre_ping=True, pool_recycle=3600, connect_args=connect_args)


def describe_error(error: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's statement dump and parameter list."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        return f"{type(error.orig).__name__}: {error.orig}"
    return f"{type(error).__name__}: {error}"


class Datalake:
    """Reads pending rows and writes predictions back, one transaction per batch."""

    def __init__(
        self, engine: Engine, layout: DatalakeLayout, json_page_max_bytes: int | None = None
    ) -> None:
        self.engine = engine
        self.layout = layout
        self.json_pages = engine.dialect.name in JSON_PAGE_DIALECTS
        self.json_page_max_bytes = json_page_max_bytes
        """The session's ``group_concat_max_len`` for the page documents; None: the server's
        ``max_allowed_packet``, the most one result can carry anyway."""
        columns = {layout.key, *layout.features.values(), layout.prediction}
        if layout.marker:
            columns.add(layout.marker)
        self._table = sa.table(layout.table, *(sa.column(name) for name in columns), schema=layout.schema)
        self._key = self._table.c[layout.key]
        pending: sa.ColumnElement[bool] = self._table.c[layout.prediction].is_(None)
        if layout.marker:
            pending = sa.and_(pending, self._table.c[layout.marker].is_(None))
        self._pending = pending

    @property
    def where(self) -> str:
        """The URL without its password and the table, for messages."""
        return f"{self.engine.url.render_as_string(hide_password=True)} table {self.layout.qualified_table}"

    def read_pending(self, after_key: Any, limit: int) -> PendingBatch:
        """Up to ``limit`` awaiting rows with a key above ``after_key`` (None: from the start).

        Paging by key, not by offset, so rows that stay pending (invalid rows without a marker column)
        are read once per dispatch and never loop.
        """
        keys, columns, _ = self._read(self._pending, after_key, limit, with_prediction=False)
        return PendingBatch(keys, columns)

    def read_marked(self, dispatch_id: str, after_key: Any, limit: int) -> MarkedBatch:
        """Up to ``limit`` rows carrying ``dispatch_id`` in the marker column, in key order: what that
        dispatch committed, whether or not it lived to record it (needs a marker column)."""
        if not self.layout.marker:
            return MarkedBatch([], {name: [] for name in FEATURE_NAMES}, [])
        marked = self._table.c[self.layout.marker] == dispatch_id
        keys, columns, predictions = self._read(marked, after_key, limit, with_prediction=True)
        return MarkedBatch(keys, columns, predictions)

    def _read(
        self, condition: sa.ColumnElement[bool], after_key: Any, limit: int, with_prediction: bool
    ) -> tuple[list[Any], dict[str, list[Any]], list[Any]]:
        features = list(self.layout.features.items())
        selected = [self._key, *(self._table.c[column] for _, column in features)]
        if with_prediction:
            selected.append(self._table.c[self.layout.prediction])
        query = sa.select(*selected).where(condition)
        if after_key is not None:
            query = query.where(self._key > after_key)
        query = query.order_by(self._key).limit(limit)
        try:
            with self.engine.connect() as connection:
                rows = self._json_page(connection, query) if self.json_pages else None
                if rows is None:
                    rows = connection.execute(query).all()
        except SQLAlchemyError as error:
            raise DatalakeError(f"reading {self.where}: {describe_error(error)}") from error
        if not rows:
            return [], {name: [] for name in FEATURE_NAMES}, []
        values = list(zip(*rows, strict=True))
        feature_values = values[1 : 1 + len(features)]
        columns = {name: list(column) for (name, _), column in zip(features, feature_values, strict=True)}
        return list(values[0]), columns, list(values[-1]) if with_prediction else []

    def _json_page(self, connection: Connection, page: sa.Select[Any]) -> Sequence[Sequence[Any]] | None:
        """The page's rows from one JSON document built by the server, in key order; None when the
        document is not the whole page (cut at ``group_concat_max_len``) or not UTF-8."""
        limit = int(self.json_page_max_bytes) if self.json_page_max_bytes else "@@max_allowed_packet"
        if connection.info.get(_JSON_PAGE_SESSION) != limit:
            connection.exec_driver_sql(f"SET SESSION group_concat_max_len = {limit}")
            connection.info[_JSON_PAGE_SESSION] = limit
        rows = page.with_only_columns(
            sa.func.json_array(*page.selected_columns).label("page_row"), self._key.label("page_key")
        ).subquery("page")
        document = sa.select(
            sa.func.count(),
            sa.literal_column("GROUP_CONCAT(page_row ORDER BY page_key SEPARATOR ',')", sa.Text()),
        ).select_from(rows)
        count, text = connection.execute(document).one()
        if not count:
            return []
        try:
            decoded = json.loads(b"[" + text + b"]" if isinstance(text, bytes) else f"[{text}]")
        except ValueError:
            return None
        return decoded if len(decoded) == count else None

    def write_back(
        self, dispatch_id: str, predictions: Mapping[int, Sequence[Any]], invalid: Sequence[Any]
    ) -> int:
        """Write one batch in one transaction: predicted classes (keys grouped by class) and markers.

        Returns how many predictions were written; rows that no longer await one are left alone.
        A failure rolls the whole batch back.
        """
        values: dict[str, Any] = {self.layout.marker: dispatch_id} if self.layout.marker else {}
        written = 0
        try:
            with self.engine.begin() as connection:
                for predicted_class, keys in predictions.items():
                    for chunk in _chunks(keys, IN_LIST_ROWS):
                        result = connection.execute(
                            sa.update(self._table)
                            .where(self._key.in_(chunk), self._pending)
                            .values({self.layout.prediction: predicted_class, **values})
                        )
                        written += result.rowcount
                if self.layout.marker:
                    for chunk in _chunks(invalid, IN_LIST_ROWS):
                        connection.execute(
                            sa.update(self._table).where(self._key.in_(chunk), self._pending).values(values)
                        )
        except SQLAlchemyError as error:
            raise DatalakeError(f"writing to {self.where}: {describe_error(error)}") from error
        return written

    def count_pending(self) -> int:
        query = sa.select(sa.func.count()).select_from(self._table).where(self._pending)
        try:
            with self.engine.connect() as connection:
                return int(connection.execute(query).scalar_one())
        except SQLAlchemyError as error:
            raise DatalakeError(f"counting pending rows of {self.where}: {describe_error(error)}") from error

    def status(self) -> DatalakeStatus:
        """Connect and count the awaiting rows; any failure is reported, never raised."""
        started = time.perf_counter()
        try:
            pending = self.count_pending()
        except DatalakeError as error:
            return DatalakeStatus(False, self.layout.qualified_table, None, None, str(error))
        except Exception as error:
            return DatalakeStatus(False, self.layout.qualified_table, None, None, describe_error(error))
        latency = (time.perf_counter() - started) * 1000
        return DatalakeStatus(True, self.layout.qualified_table, round(latency, 2), pending, None)


def open_datalake(settings: DispatchSettings) -> Datalake:
    """The configured datalake; raises DatalakeConfigError for settings that cannot work."""
    layout = DatalakeLayout.from_settings(settings)
    url = settings.datalake_url
    try:
        engine = create_datalake_engine(url, settings.datalake_connect_timeout_seconds)
    except (SQLAlchemyError, ImportError) as error:
        raise DatalakeConfigError(f"ANCORA_DATALAKE_URL cannot be used: {describe_error(error)}") from error
    return Datalake(engine, layout)


def default_sqlite_folder(settings: DispatchSettings) -> Path | None:
    """The folder of the default demo datalake, which `ancora datalake seed` creates."""
    parsed = make_url(settings.datalake_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database).parent
    return None


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
