"""task service: remote_users and remote_tasks, as the service created them before migrations

Revision ID: 0001
Revises:
Create Date: 2026-12-01 22:30:00

Databases created by the service's earlier ``create_all`` hold exactly this schema; they are stamped
at this revision on first open and upgraded from here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "remote_users",
        sa.Column("username", sa.String(150), primary_key=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "remote_tasks",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(150), nullable=False),
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
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("log_tail", sa.Text, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_remote_tasks_owner", "remote_tasks", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_remote_tasks_owner", table_name="remote_tasks")
    op.drop_table("remote_tasks")
    op.drop_table("remote_users")
