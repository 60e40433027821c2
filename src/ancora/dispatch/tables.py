"""Tables of the dispatch events database: each dispatch, its events and each row's prediction.

Their own Alembic version table (``dispatch_alembic_version``), so the events may live in the same
database as the raw-data store (compose's MySQL) without the two migration histories colliding.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql

VERSION_TABLE = "dispatch_alembic_version"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

Timestamp = DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
"""Microseconds everywhere: MySQL's DATETIME keeps whole seconds unless told otherwise."""

EventId = BigInteger().with_variant(Integer(), "sqlite")
"""SQLite only autoincrements INTEGER PRIMARY KEY."""

DISPATCH_ID_LENGTH = 64
ROW_KEY_LENGTH = 191
"""Fits a utf8mb4 primary key on MySQL; longer datalake keys are refused with a clear message."""

dispatches = Table(
    "dispatches",
    metadata,
    Column("id", String(DISPATCH_ID_LENGTH), primary_key=True),
    Column("dag_run_id", String(250), nullable=True),
    Column("started_at", Timestamp, nullable=False),
    Column("ended_at", Timestamp, nullable=True),
    Column("model_name", String(250), nullable=True),
    Column("model_version", String(32), nullable=True),
    Column("datalake_table", String(250), nullable=False),
    Column("rows_read", Integer, nullable=False, default=0),
    Column("rows_predicted", Integer, nullable=False, default=0),
    Column("rows_invalid", Integer, nullable=False, default=0),
    Column("rows_written", Integer, nullable=False, default=0),
    Column("state", String(16), nullable=False),
    Column("error", Text, nullable=True),
    Column("heartbeat_at", Timestamp, nullable=True),
    Column("host", String(255), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("pid_start_ticks", BigInteger, nullable=True),
    Index(None, "started_at"),
    Index(None, "state"),
)
"""``heartbeat_at`` moves while the dispatch runs; with ``host``, ``pid`` and ``pid_start_ticks`` (the
process's start time, so a reused pid is not mistaken for it) the next dispatch tells a dead one
from a live one (revision 0002)."""

dispatch_events = Table(
    "dispatch_events",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column(
        "dispatch_id",
        String(DISPATCH_ID_LENGTH),
        ForeignKey("dispatches.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event", String(16), nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("detail", Text, nullable=True),
    Index(None, "dispatch_id"),
)

dispatch_predictions = Table(
    "dispatch_predictions",
    metadata,
    Column(
        "dispatch_id",
        String(DISPATCH_ID_LENGTH),
        ForeignKey("dispatches.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("row_key", String(ROW_KEY_LENGTH), nullable=False),
    Column("predicted_class", SmallInteger, nullable=True),
    Column("status", String(8), nullable=False),
    Column("error", Text, nullable=True),
)
"""One row per datalake row a dispatch handled, in the order it read them."""
