"""Read queries of the raw-data store, shared by training and evaluation."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Select, func, select

from ancora.schema import COLUMN_NAMES, LABEL_NAME
from ancora.store.tables import evaluation_set_contents, raw_rows


def first_copies(
    group_number: int, through_row_id: int | None = None, contents: Select[Any] | None = None
) -> Select[Any]:
    """The id of the first stored copy of every content of a group (up to ``through_row_id``), or of
    the contents `contents` selects."""
    query = select(func.min(raw_rows.c.id)).where(raw_rows.c.group_number == group_number)
    if through_row_id is not None:
        query = query.where(raw_rows.c.id <= through_row_id)
    if contents is not None:
        query = query.where(raw_rows.c.content_hash.in_(contents))
    return query.group_by(raw_rows.c.content_hash)


def validated_rows_query(
    group_number: int,
    *,
    through_row_id: int | None = None,
    distinct_contents: bool = False,
    excluding_evaluation_sets_through: int | None = None,
    only_evaluation_set: int | None = None,
    excluding_classes: Collection[int] = (),
) -> Select[Any]:
    """The validated rows of a group; quarantined rows live in another table and never appear here.

    Training and evaluation read through this one query, so the text logged as a dataset's source
    is the query that produced the rows, and re-running it later returns the same rows:

    * ``through_row_id`` pins it to the rows present at the time;
    * ``distinct_contents`` keeps one row per content, its first stored copy (the reference server
      sends the same content in many batches; see docs/training.md, "Repeated content");
    * ``excluding_evaluation_sets_through`` leaves out every content held by any evaluation set up to
      that id (every version of every group drawn until then), whichever copy of it was stored;
    * ``only_evaluation_set`` keeps the contents of one evaluation set version.
    """
    columns = [raw_rows.c.id, raw_rows.c.batch_number, raw_rows.c.content_hash]
    columns += [raw_rows.c[name] for name in COLUMN_NAMES]
    query = select(*columns).where(raw_rows.c.group_number == group_number).order_by(raw_rows.c.id)
    if through_row_id is not None:
        query = query.where(raw_rows.c.id <= through_row_id)
    members = None
    if only_evaluation_set is not None:
        members = select(evaluation_set_contents.c.content_hash).where(
            evaluation_set_contents.c.evaluation_set_id == only_evaluation_set
        )
    if distinct_contents:
        # The content filter goes inside, so the outer query is a plain id lookup: SQLite plans a
        # content filter next to it as a nested loop over both lists.
        query = query.where(raw_rows.c.id.in_(first_copies(group_number, through_row_id, members)))
    elif members is not None:
        query = query.where(raw_rows.c.content_hash.in_(members))
    if excluding_evaluation_sets_through is not None:
        held_out = select(evaluation_set_contents.c.content_hash).where(
            evaluation_set_contents.c.evaluation_set_id <= excluding_evaluation_sets_through
        )
        query = query.where(raw_rows.c.content_hash.not_in(held_out))
    if excluding_classes:
        query = query.where(raw_rows.c[LABEL_NAME].not_in(sorted(excluding_classes)))
    return query
