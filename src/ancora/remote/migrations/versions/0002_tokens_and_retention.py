"""task service: token version per user; disk use and purge time per task

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 22:31:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("remote_users") as batch:
        batch.add_column(sa.Column("token_version", sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("remote_tasks") as batch:
        batch.add_column(sa.Column("disk_bytes", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("remote_tasks") as batch:
        batch.drop_column("purged_at")
        batch.drop_column("disk_bytes")
    with op.batch_alter_table("remote_users") as batch:
        batch.drop_column("token_version")
