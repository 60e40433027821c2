"""evaluation sets: frozen, versioned row ids for the promotion gate

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "evaluation_sets",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("group_number", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("fraction", sa.Float(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column(
            "classes", sa.Text(), nullable=False, comment="JSON list of the labels the data held when drawn"
        ),
        sa.Column(
            "batches", sa.Text(), nullable=False, comment="JSON list of the batches the data held when drawn"
        ),
        sa.Column(
            "drawn_through_row_id", sa.BigInteger(), nullable=False, comment="Highest raw row id when drawn"
        ),
        sa.Column(
            "trained_through_row_id",
            sa.BigInteger(),
            nullable=True,
            comment="Highest raw row id any training run with this version may have used",
        ),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_sets")),
        sa.UniqueConstraint(
            "group_number", "version", name=op.f("uq_evaluation_sets_group_number_version")
        ),
    )
    op.create_table(
        "evaluation_set_rows",
        sa.Column("evaluation_set_id", ROW_ID, nullable=False),
        sa.Column("row_id", ROW_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_set_id"],
            ["evaluation_sets.id"],
            name=op.f("fk_evaluation_set_rows_evaluation_set_id_evaluation_sets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["row_id"], ["raw_rows.id"], name=op.f("fk_evaluation_set_rows_row_id_raw_rows")
        ),
        sa.PrimaryKeyConstraint("evaluation_set_id", "row_id", name=op.f("pk_evaluation_set_rows")),
    )


def downgrade() -> None:
    op.drop_table("evaluation_set_rows")
    op.drop_table("evaluation_sets")
