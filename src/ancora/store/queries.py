"""Read queries of the raw-data store, shared by training and evaluation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from ancora.schema import COLUMN_NAMES
from ancora.store.tables import evaluation_set_rows, raw_rows


def validated_rows_query(
    group_number: int,
    *,
    through_row_id: int | None = None,
    excluding_evaluation_set: int | None = None,
    only_evaluation_set: int | None = None,
) -> Select[Any]:
    """The validated rows of a group; quarantined rows live in another table and never appear here.

    Training and evaluation read through this one query, so the text logged as a dataset's source
    is the query that produced the rows: ``through_row_id`` pins it to the rows present at the time,
    the evaluation-set filters keep frozen evaluation rows out of training.
    """
    columns = [raw_rows.c.id, raw_rows.c.batch_number, raw_rows.c.content_hash]
    columns += [raw_rows.c[name] for name in COLUMN_NAMES]
    query = select(*columns).where(raw_rows.c.group_number == group_number).order_by(raw_rows.c.id)
    if through_row_id is not None:
        query = query.where(raw_rows.c.id <= through_row_id)
    if excluding_evaluation_set is not None:
        held_out = select(evaluation_set_rows.c.row_id).where(
            evaluation_set_rows.c.evaluation_set_id == excluding_evaluation_set
        )
        query = query.where(raw_rows.c.id.not_in(held_out))
    if only_evaluation_set is not None:
        members = select(evaluation_set_rows.c.row_id).where(
            evaluation_set_rows.c.evaluation_set_id == only_evaluation_set
        )
        query = query.where(raw_rows.c.id.in_(members))
    return query
