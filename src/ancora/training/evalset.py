"""The frozen evaluation set of the promotion gate: drawn once, stored by row ids, versioned.

Champion and challenger are scored on the same rows, and no model may have trained on them:

* a version is drawn stratified by class with a fixed seed and stored as raw-row ids, and training
  reads the store with those ids excluded;
* it goes stale when the data holds a batch or a class it did not hold when the version was drawn;
  the next version keeps every row of the previous one and adds a stratified share of the rows no
  training run has seen yet (ids above the highest id any earlier run may have read), so the
  current champion is never scored on rows it was fitted on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, insert, select, update

from ancora.schema import LABEL_NAME
from ancora.store.tables import evaluation_set_rows, evaluation_sets
from ancora.training.data import CONTENT_HASH, ROW_ID, RowSet, TrainingDataError, rows_digest


@dataclass(frozen=True)
class EvaluationSet:
    id: int
    group_number: int
    version: int
    row_count: int
    classes: tuple[int, ...]
    batches: tuple[int, ...]
    digest: str
    reason: str

    def is_stale_for(self, rows: RowSet) -> bool:
        return not (set(rows.classes) <= set(self.classes) and set(rows.batches) <= set(self.batches))


def stratified_sample(frame: pd.DataFrame, fraction: float, seed: int) -> list[int]:
    """Row ids of a per-class share of `frame`; a class with two rows or more keeps one in training."""
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for _, group in frame.sort_values(ROW_ID).groupby(LABEL_NAME, sort=True):
        count = len(group)
        if count < 2:
            continue
        take = min(max(1, round(fraction * count)), count - 1)
        ids = group[ROW_ID].to_numpy()
        chosen.extend(int(i) for i in rng.choice(ids, size=take, replace=False))
    return sorted(chosen)


def latest_evaluation_set(engine: Engine, group_number: int) -> EvaluationSet | None:
    query = (
        select(evaluation_sets)
        .where(evaluation_sets.c.group_number == group_number)
        .order_by(evaluation_sets.c.version.desc())
        .limit(1)
    )
    with engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    if row is None:
        return None
    return EvaluationSet(
        id=int(row["id"]),
        group_number=int(row["group_number"]),
        version=int(row["version"]),
        row_count=int(row["row_count"]),
        classes=tuple(json.loads(row["classes"])),
        batches=tuple(json.loads(row["batches"])),
        digest=str(row["digest"]),
        reason=str(row["reason"]),
    )


def evaluation_row_ids(engine: Engine, evaluation_set_id: int) -> set[int]:
    query = select(evaluation_set_rows.c.row_id).where(
        evaluation_set_rows.c.evaluation_set_id == evaluation_set_id
    )
    with engine.connect() as connection:
        return {int(row_id) for (row_id,) in connection.execute(query)}


def training_watermark(engine: Engine, group_number: int) -> int:
    """The highest raw row id any training run may have read; rows above it are unseen by every model."""
    query = select(func.max(evaluation_sets.c.trained_through_row_id)).where(
        evaluation_sets.c.group_number == group_number
    )
    with engine.connect() as connection:
        return int(connection.execute(query).scalar() or 0)


def _staleness_reason(current: EvaluationSet | None, rows: RowSet) -> str:
    if current is None:
        return "first evaluation set"
    parts = []
    if new_batches := sorted(set(rows.batches) - set(current.batches)):
        parts.append(f"new batches {new_batches}")
    if new_classes := sorted(set(rows.classes) - set(current.classes)):
        parts.append(f"new classes {new_classes}")
    return f"v{current.version} stale: " + ", ".join(parts)


def ensure_evaluation_set(
    engine: Engine, group_number: int, rows: RowSet, *, fraction: float, seed: int
) -> EvaluationSet:
    """The current evaluation set for `rows`, drawing and recording a new version when it is stale."""
    current = latest_evaluation_set(engine, group_number)
    if current is not None and not current.is_stale_for(rows):
        return current
    version = 1 if current is None else current.version + 1
    kept = evaluation_row_ids(engine, current.id) if current is not None else set()
    watermark = training_watermark(engine, group_number)
    frame = rows.frame
    unseen = frame[(frame[ROW_ID] > watermark) & ~frame[ROW_ID].isin(kept)]
    member_ids = sorted(kept | set(stratified_sample(unseen, fraction, seed + version)))
    if not member_ids:
        raise TrainingDataError(
            "no rows for an evaluation set: every stored row has already been used for training"
        )
    members = frame[frame[ROW_ID].isin(member_ids)]
    record = {
        "group_number": group_number,
        "version": version,
        "seed": seed + version,
        "fraction": fraction,
        "row_count": len(member_ids),
        "classes": json.dumps(rows.classes),
        "batches": json.dumps(rows.batches),
        "drawn_through_row_id": rows.max_row_id,
        "trained_through_row_id": None,
        "digest": rows_digest(members[[ROW_ID, CONTENT_HASH]]),
        "reason": _staleness_reason(current, rows),
        "created_at": datetime.now(UTC),
    }
    with engine.begin() as connection:
        new_id = connection.execute(insert(evaluation_sets).values(**record)).inserted_primary_key
        assert new_id is not None
        connection.execute(
            insert(evaluation_set_rows),
            [{"evaluation_set_id": int(new_id[0]), "row_id": row_id} for row_id in member_ids],
        )
    latest = latest_evaluation_set(engine, group_number)
    assert latest is not None and latest.version == version
    return latest


def mark_trained_through(engine: Engine, evaluation_set_id: int, row_id: int) -> None:
    """Record, before fitting, that a training run may read rows up to `row_id` (the watermark only rises)."""
    with engine.begin() as connection:
        connection.execute(
            update(evaluation_sets)
            .where(evaluation_sets.c.id == evaluation_set_id)
            .where(
                (evaluation_sets.c.trained_through_row_id.is_(None))
                | (evaluation_sets.c.trained_through_row_id < row_id)
            )
            .values(trained_through_row_id=row_id)
        )
