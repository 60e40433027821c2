"""Monitoring tables of the events database: the prediction log, drift reports, alerts, health.

They share the dispatch events database and its Alembic history (revision 0003), so one
``ANCORA_DISPATCH_EVENTS_DB_URL`` holds everything that happened to the served model.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
)

from ancora.dispatch.tables import EventId, Timestamp, metadata

REQUEST_ID_LENGTH = 64
REPORT_ID_LENGTH = 64
ALERT_KEY_LENGTH = 191

prediction_log = Table(
    "prediction_log",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("request_id", String(REQUEST_ID_LENGTH), nullable=False),
    Column("route", String(32), nullable=False),
    Column("username", String(150), nullable=True),
    Column("model_name", String(250), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("row_index", Integer, nullable=False),
    Column("features", Text, nullable=False),
    Column("predicted_class", SmallInteger, nullable=False),
    Column("probability", Float, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Index(None, "at"),
    Index(None, "request_id"),
)
"""One row per predicted row: what was asked (features as JSON), by whom, what was answered."""

drift_reports = Table(
    "drift_reports",
    metadata,
    Column("id", String(REPORT_ID_LENGTH), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("window_start", Timestamp, nullable=True),
    Column("window_end", Timestamp, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("reference_version", String(32), nullable=False),
    Column("reference_run_id", String(64), nullable=True),
    Column("reference_rows", Integer, nullable=False),
    Column("current_rows", Integer, nullable=False),
    Column("feature_count", Integer, nullable=False),
    Column("drifted_features", Integer, nullable=False),
    Column("share_drifted", Float, nullable=False),
    Column("class_mix_score", Float, nullable=True),
    Column("class_mix_drifted", Boolean, nullable=False),
    Column("breached", Boolean, nullable=False),
    Column("class_mix", Text, nullable=False),
    Column("artifact_uri", Text, nullable=True),
    Index(None, "created_at"),
    Index(None, "kind", "subject", "reference_version", unique=True),
)
"""One report per collected batch or served window against one champion's training data; a rerun of
the same subject against the same champion replaces it."""

drift_features = Table(
    "drift_features",
    metadata,
    Column(
        "report_id",
        String(REPORT_ID_LENGTH),
        ForeignKey("drift_reports.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("feature", String(64), primary_key=True),
    Column("method", String(32), nullable=False),
    Column("score", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("drifted", Boolean, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("dedupe_key", String(ALERT_KEY_LENGTH), nullable=False),
    Column("summary", Text, nullable=False),
    Column("detail", Text, nullable=True),
    Column("notified", String(64), nullable=False),
    Index(None, "at"),
    Index(None, "dedupe_key", unique=True),
)
"""Every alert raised, once per dedupe key: a retried task or a rerun never notifies twice."""

service_health = Table(
    "service_health",
    metadata,
    Column("service", String(64), primary_key=True),
    Column("healthy", Boolean, nullable=False),
    Column("since", Timestamp, nullable=False),
    Column("checked_at", Timestamp, nullable=False),
    Column("detail", Text, nullable=True),
)
"""The latest known state of each watched service and since when it holds: how long it is down."""
