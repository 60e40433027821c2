"""What one training run reads: distinct contents, the evaluation set, training rows without it.

Everything a run learns from and is judged on is decided here, before any model is fitted, so the
data tests can run exactly this (no MLflow) and check that training never reads an evaluation content.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from ancora.store import validated_rows_query
from ancora.store.tables import raw_rows
from ancora.training.data import RowSet, check_trainable, read_rows, without_classes
from ancora.training.evalset import EvaluationChoice, ensure_evaluation_set, mark_trained_through

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingInputs:
    stored_rows: int
    """Rows of the group in the store: one per (batch, content), so repeated contents count again."""
    contents: RowSet
    """One row per distinct content (its first stored copy): what the run reasons about."""
    choice: EvaluationChoice
    training: RowSet
    """Distinct contents without any evaluation set's contents and without the left-out classes."""
    evaluation: RowSet
    """The evaluation set version's contents, one row each."""
    left_out_classes: dict[int, int]
    """Classes with too few distinct contents to stratify, and their counts: not in this run."""


def stored_row_count(engine: Engine, group_number: int) -> int:
    query = select(func.count()).select_from(raw_rows).where(raw_rows.c.group_number == group_number)
    with engine.connect() as connection:
        return int(connection.execute(query).scalar() or 0)


def prepare_inputs(
    engine: Engine,
    group_number: int,
    *,
    min_rows: int,
    min_class_rows: int,
    eval_fraction: float,
    seed: int,
) -> TrainingInputs:
    """Read the data, choose the evaluation set, read training without it, and record the watermark.

    Raises TrainingDataError when the data cannot support training. The watermark is recorded before
    returning, so the rows read here can never join a later evaluation set version.
    """
    stored = stored_row_count(engine, group_number)
    contents = read_rows(engine, validated_rows_query(group_number, distinct_contents=True))
    thin = check_trainable(contents, min_rows, min_class_rows)
    if thin:
        log.warning(
            "left out of this run, too few distinct rows to stratify (ANCORA_TRAIN_MIN_CLASS_ROWS=%s): %s",
            min_class_rows,
            ", ".join(f"class {label}: {count}" for label, count in thin.items()),
        )
    choice = ensure_evaluation_set(
        engine, group_number, without_classes(contents, thin), fraction=eval_fraction, seed=seed
    )
    eval_set = choice.evaluation_set
    training = read_rows(
        engine,
        validated_rows_query(
            group_number,
            through_row_id=contents.max_row_id,
            distinct_contents=True,
            excluding_evaluation_sets_through=eval_set.id,
            excluding_classes=thin,
        ),
    )
    evaluation = read_rows(
        engine, validated_rows_query(group_number, distinct_contents=True, only_evaluation_set=eval_set.id)
    )
    mark_trained_through(engine, eval_set.id, contents.max_row_id)
    log.info(
        "group %s: %s stored rows, %s distinct contents; training %s, evaluation v%s %s",
        group_number,
        stored,
        len(contents),
        len(training),
        eval_set.version,
        len(evaluation),
    )
    return TrainingInputs(
        stored_rows=stored,
        contents=contents,
        choice=choice,
        training=training,
        evaluation=evaluation,
        left_out_classes=thin,
    )
