"""Tables of the task service: its users and their tasks.

They have their own metadata and their own Alembic version table (``remote_alembic_version``), so
the service can share a database with the raw-data store or the dispatch events without the
migration histories colliding.
"""

from __future__ import annotations

import sqlalchemy as sa

VERSION_TABLE = "remote_alembic_version"

metadata = sa.MetaData()

users = sa.Table(
    "remote_users",
    metadata,
    sa.Column("username", sa.String(150), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("token_version", sa.Integer, nullable=False, default=0, server_default="0"),
)
"""``token_version`` is in every login token; raising it (a password reset) voids older tokens."""

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
    sa.Column("disk_bytes", sa.BigInteger, nullable=False, default=0, server_default="0"),
    sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
)
"""``disk_bytes`` is what the task's kept files weigh (the quota adds them up); ``purged_at`` is when
the retention removed them."""
