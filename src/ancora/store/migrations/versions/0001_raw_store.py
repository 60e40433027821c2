"""raw store: raw rows, quarantine, collection log

Revision ID: 0001
Revises:
Create Date: 2026-11-23 09:00:31.829078
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
        "collection_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("group_number", sa.SmallInteger(), nullable=False),
        sa.Column("batch_number", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_log")),
    )
    with op.batch_alter_table("collection_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_collection_log_collected_at"), ["collected_at"], unique=False
        )

    op.create_table(
        "quarantined_rows",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("group_number", sa.SmallInteger(), nullable=False),
        sa.Column("batch_number", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=32), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantined_rows")),
        sa.UniqueConstraint(
            "group_number",
            "batch_number",
            "content_hash",
            name=op.f("uq_quarantined_rows_group_number_batch_number_content_hash"),
        ),
    )
    op.create_table(
        "raw_rows",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("group_number", sa.SmallInteger(), nullable=False),
        sa.Column("batch_number", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=32), nullable=False),
        sa.Column("Elevation", sa.Integer(), nullable=False),
        sa.Column("Aspect", sa.Integer(), nullable=False),
        sa.Column("Slope", sa.Integer(), nullable=False),
        sa.Column("Horizontal_Distance_To_Hydrology", sa.Integer(), nullable=False),
        sa.Column("Vertical_Distance_To_Hydrology", sa.Integer(), nullable=False),
        sa.Column("Horizontal_Distance_To_Roadways", sa.Integer(), nullable=False),
        sa.Column("Hillshade_9am", sa.Integer(), nullable=False),
        sa.Column("Hillshade_Noon", sa.Integer(), nullable=False),
        sa.Column("Hillshade_3pm", sa.Integer(), nullable=False),
        sa.Column("Horizontal_Distance_To_Fire_Points", sa.Integer(), nullable=False),
        sa.Column("Wilderness_Area", sa.String(length=16), nullable=False),
        sa.Column("Soil_Type", sa.String(length=16), nullable=False),
        sa.Column("Cover_Type", sa.SmallInteger(), nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_rows")),
        sa.UniqueConstraint(
            "group_number",
            "batch_number",
            "content_hash",
            name=op.f("uq_raw_rows_group_number_batch_number_content_hash"),
        ),
    )


def downgrade() -> None:
    op.drop_table("raw_rows")
    op.drop_table("quarantined_rows")
    with op.batch_alter_table("collection_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_collection_log_collected_at"))

    op.drop_table("collection_log")
