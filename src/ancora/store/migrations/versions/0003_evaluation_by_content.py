"""evaluation sets by content: membership by content hash, not row id

The reference data server sends the same row content in many batches, so a set drawn by row id
left copies of its contents in training. This adds `evaluation_set_contents`, records the contents
of every version drawn by row id (so training excludes them from now on) and marks those versions
`membership = 'row_id'`: the next training run draws a version by content that replaces them and
says so in the gate's decision.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "evaluation_set_contents",
        sa.Column("evaluation_set_id", ROW_ID, nullable=False),
        sa.Column("content_hash", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_set_id"],
            ["evaluation_sets.id"],
            name=op.f("fk_evaluation_set_contents_evaluation_set_id_evaluation_sets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "evaluation_set_id", "content_hash", name=op.f("pk_evaluation_set_contents")
        ),
    )
    with op.batch_alter_table("evaluation_set_contents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_evaluation_set_contents_content_hash"), ["content_hash"], unique=False
        )
    # The dedup key leads with the content, so the same index serves every lookup by content (the
    # training reads, "is this content new") and the store keeps one random-order index, not two.
    with op.batch_alter_table("raw_rows", schema=None) as batch_op:
        batch_op.drop_constraint("uq_raw_rows_group_number_batch_number_content_hash", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_raw_rows_group_number_content_hash_batch_number"),
            ["group_number", "content_hash", "batch_number"],
        )
    with op.batch_alter_table("evaluation_sets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "membership",
                sa.String(length=16),
                nullable=False,
                server_default="row_id",
                comment="content; row_id for versions drawn before migration 0003 (replaced on the next run)",
            )
        )
    with op.batch_alter_table("evaluation_sets", schema=None) as batch_op:
        batch_op.alter_column(
            "membership",
            existing_type=sa.String(length=16),
            existing_nullable=False,
            server_default=None,
            existing_comment="content; row_id for versions drawn before migration 0003 (replaced on the next run)",
        )
    op.execute(
        "INSERT INTO evaluation_set_contents (evaluation_set_id, content_hash) "
        "SELECT DISTINCT m.evaluation_set_id, r.content_hash "
        "FROM evaluation_set_rows m JOIN raw_rows r ON r.id = m.row_id"
    )


def downgrade() -> None:
    op.execute("DELETE FROM evaluation_sets WHERE membership <> 'row_id'")
    with op.batch_alter_table("evaluation_sets", schema=None) as batch_op:
        batch_op.drop_column("membership")
    with op.batch_alter_table("raw_rows", schema=None) as batch_op:
        batch_op.drop_constraint("uq_raw_rows_group_number_content_hash_batch_number", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_raw_rows_group_number_batch_number_content_hash"),
            ["group_number", "batch_number", "content_hash"],
        )
    with op.batch_alter_table("evaluation_set_contents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evaluation_set_contents_content_hash"))
    op.drop_table("evaluation_set_contents")
