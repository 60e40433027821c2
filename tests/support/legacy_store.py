"""A raw store as a deployment before migration 0003 left it: an evaluation set of row ids, leaked."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa

from ancora.store import RawRowStore, create_store_engine, upgrade_schema
from ancora.store.tables import raw_rows
from tests.support.training_data import store_rows


def legacy_deployment(store_url: str, rows: list[list[str]]) -> tuple[RawRowStore, set[int], int]:
    """A store at 0002: batch 1 holds 600 contents, batch 2 repeats 300 of them, v1 holds row ids."""
    engine = create_store_engine(store_url)
    upgrade_schema(engine, "0002")
    store = RawRowStore(engine)
    store_rows(store, rows[:600], first_batch=1)
    store_rows(store, rows[300:600], first_batch=2)
    with engine.connect() as connection:
        batch_one = (
            connection.execute(
                sa.select(raw_rows.c.id).where(raw_rows.c.batch_number == 1).order_by(raw_rows.c.id)
            )
            .scalars()
            .all()
        )
        watermark = int(connection.execute(sa.select(sa.func.max(raw_rows.c.id))).scalar_one())
    held_out = {int(row_id) for row_id in batch_one[::5]}  # 120 rows: 60 repeated in batch 2, 60 not
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO evaluation_sets (group_number, version, seed, fraction, row_count, classes, "
                "batches, drawn_through_row_id, trained_through_row_id, digest, reason, created_at) VALUES "
                "(1, 1, 43, 0.2, :count, :classes, '[1, 2]', :watermark, :watermark, 'old', "
                "'first evaluation set', :now)"
            ),
            {
                "count": len(held_out),
                "classes": json.dumps([1, 2, 3, 4, 5, 6, 7]),
                "watermark": watermark,
                "now": datetime.now(UTC).replace(tzinfo=None),
            },
        )
        connection.execute(
            sa.text("INSERT INTO evaluation_set_rows (evaluation_set_id, row_id) VALUES (1, :row_id)"),
            [{"row_id": row_id} for row_id in sorted(held_out)],
        )
    return store, held_out, watermark
