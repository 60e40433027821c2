"""collection staging and per-run counts: rows travel through the store, not Airflow's XCom

`collection_staging` holds what the fetch and validate tasks of one collect run hand on, keyed by
the run; `collection_log.new_contents` counts the contents a response brought that the group had
never stored; the index on `collection_log.run_id` lets a retried task sum what its run stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql


revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "collection_staging",
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "stage", name=op.f("pk_collection_staging")),
    )
    with op.batch_alter_table("collection_log", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "new_contents",
                sa.Integer(),
                nullable=True,
                comment="Rows whose content the group had never stored before; NULL for cycles logged before 0004",
            )
        )
        batch_op.create_index(batch_op.f("ix_collection_log_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("collection_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_collection_log_run_id"))
        batch_op.drop_column("new_contents")
    op.drop_table("collection_staging")
