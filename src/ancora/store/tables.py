"""Table definitions of the raw-data store (SQLAlchemy Core, so bulk inserts stay cheap)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql

from ancora.schema import CATEGORICAL, FEATURES, LABEL_NAME

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

RowId = BigInteger().with_variant(Integer(), "sqlite")
"""SQLite only autoincrements INTEGER PRIMARY KEY."""

RUN_ID_LENGTH = 250

raw_rows = Table(
    "raw_rows",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("group_number", SmallInteger, nullable=False),
    Column("batch_number", Integer, nullable=False),
    Column("content_hash", String(32), nullable=False),
    *(Column(c.name, String(16) if c.kind == CATEGORICAL else Integer, nullable=False) for c in FEATURES),
    Column(LABEL_NAME, SmallInteger, nullable=False),
    Column("collected_at", DateTime(timezone=True), nullable=False),
    Column("run_id", String(RUN_ID_LENGTH), nullable=False),
    UniqueConstraint("group_number", "content_hash", "batch_number"),
)
"""One row per (group, content, batch): the same content arrives in many batches of the reference
server, so anything about *what* was collected (training, evaluation, "new data") goes by
``content_hash``, and the unique key leads with it so that one index serves the dedup and every
lookup by content (migration 0003 reordered it)."""

quarantined_rows = Table(
    "quarantined_rows",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("group_number", SmallInteger, nullable=False),
    Column("batch_number", Integer, nullable=False),
    Column("content_hash", String(32), nullable=False),
    Column("raw", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("collected_at", DateTime(timezone=True), nullable=False),
    Column("run_id", String(RUN_ID_LENGTH), nullable=False),
    UniqueConstraint("group_number", "batch_number", "content_hash"),
)

collection_log = Table(
    "collection_log",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("run_id", String(RUN_ID_LENGTH), nullable=False),
    Column("group_number", SmallInteger, nullable=False),
    Column("batch_number", Integer, nullable=True),
    Column("outcome", String(32), nullable=False),
    Column("received", Integer, nullable=False),
    Column("inserted", Integer, nullable=False),
    Column("duplicates", Integer, nullable=False),
    Column("quarantined", Integer, nullable=False),
    Column("collected_at", DateTime(timezone=True), nullable=False),
    Column(
        "new_contents",
        Integer,
        nullable=True,
        comment="Rows whose content the group had never stored before; NULL for cycles logged before 0004",
    ),
    Index(None, "collected_at"),
    Index(None, "run_id"),
)
"""One row per stored response, written in the same transaction as its rows: what a run stored."""

collection_staging = Table(
    "collection_staging",
    metadata,
    Column("run_id", String(RUN_ID_LENGTH), primary_key=True),
    Column("stage", String(16), primary_key=True),
    Column("payload", Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
"""What one collect run's fetch and validate tasks hand on to the next task, keyed by the run, not
the attempt; the store task deletes it in the transaction that stores the rows."""

evaluation_sets = Table(
    "evaluation_sets",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("group_number", SmallInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("seed", Integer, nullable=False),
    Column("fraction", Float, nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("classes", Text, nullable=False, comment="JSON list of the labels the data held when drawn"),
    Column("batches", Text, nullable=False, comment="JSON list of the batches the data held when drawn"),
    Column("drawn_through_row_id", BigInteger, nullable=False, comment="Highest raw row id when drawn"),
    Column(
        "trained_through_row_id",
        BigInteger,
        nullable=True,
        comment="Highest raw row id any training run with this version may have used",
    ),
    Column("digest", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column(
        "membership",
        String(16),
        nullable=False,
        comment="content; row_id for versions drawn before migration 0003 (replaced on the next run)",
    ),
    UniqueConstraint("group_number", "version"),
)
"""The frozen evaluation set of the promotion gate, one row per version (see ancora.training.evalset)."""

evaluation_set_contents = Table(
    "evaluation_set_contents",
    metadata,
    Column(
        "evaluation_set_id",
        RowId,
        ForeignKey("evaluation_sets.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("content_hash", String(32), primary_key=True),
    Index(None, "content_hash"),
)
"""Which contents belong to which evaluation set version. No row with such a content enters training."""

evaluation_set_rows = Table(
    "evaluation_set_rows",
    metadata,
    Column(
        "evaluation_set_id",
        RowId,
        ForeignKey("evaluation_sets.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("row_id", RowId, ForeignKey("raw_rows.id"), primary_key=True),
)
"""Row ids of the versions drawn before migration 0003, kept as their record; membership is by content."""
