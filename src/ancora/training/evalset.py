"""The frozen evaluation set of the promotion gate: drawn by content, versioned, never trained on.

Champion and challenger are scored on the same rows, and no model may have trained on them. The
course's reference server sends the same row content in many batches, under many stored row ids, so
membership is by **content** (the rows' content hash), never by row id:

* a version is drawn stratified by class with a fixed seed from the distinct contents, and stored as
  content hashes; training reads the store without any content that any evaluation set holds,
  whichever copy of it was stored, in every later version;
* it goes stale when the data holds a batch or a class it did not hold when the version was drawn;
  the next version keeps every content of the previous one and adds a stratified share of the
  contents no training run has read yet (first stored copy above the highest row id any earlier run
  may have read), so the current champion is never scored on contents it was fitted on. When no such
  content exists (the reference server has sent its whole slice) the current version stays;
* a version drawn by row id before migration 0003 is replaced on the next run by a version drawn by
  content: it keeps the old version's contents that no training run read and adds unseen ones, and
  its reason says how many were dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, insert, select, update

from ancora.schema import LABEL_NAME
from ancora.store.tables import evaluation_set_contents, evaluation_set_rows, evaluation_sets, raw_rows
from ancora.training.data import CONTENT_HASH, ROW_ID, RowSet, TrainingDataError

log = logging.getLogger(__name__)

BY_CONTENT = "content"
BY_ROW_ID = "row_id"
"""Versions drawn before migration 0003: their row ids left copies of their contents in training."""


@dataclass(frozen=True)
class EvaluationSet:
    id: int
    group_number: int
    version: int
    row_count: int
    """Distinct contents in the version (a version drawn by row id: its rows)."""
    classes: tuple[int, ...]
    batches: tuple[int, ...]
    digest: str
    reason: str
    membership: str = BY_CONTENT

    @property
    def by_content(self) -> bool:
        return self.membership == BY_CONTENT

    def is_stale_for(self, rows: RowSet) -> bool:
        if not self.by_content:
            return True
        return not (set(rows.classes) <= set(self.classes) and set(rows.batches) <= set(self.batches))


@dataclass(frozen=True)
class EvaluationChoice:
    """The version a run scores on, and whether this run drew it (then the gate says why)."""

    evaluation_set: EvaluationSet
    drawn_now: bool

    @property
    def note(self) -> str:
        chosen = self.evaluation_set
        if not self.drawn_now:
            return ""
        return f"scored on evaluation set v{chosen.version}, drawn by this run: {chosen.reason}"


def stratified_sample(frame: pd.DataFrame, fraction: float, seed: int) -> list[str]:
    """Content hashes of a per-class share of `frame`; a class with two contents or more keeps one back."""
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for _, group in frame.sort_values(ROW_ID).groupby(LABEL_NAME, sort=True):
        count = len(group)
        if count < 2:
            continue
        take = min(max(1, round(fraction * count)), count - 1)
        contents = group[CONTENT_HASH].to_numpy()
        chosen.extend(str(c) for c in rng.choice(contents, size=take, replace=False))
    return sorted(chosen)


def contents_digest(contents: Iterable[str]) -> str:
    """Identity of a version: its sorted content hashes."""
    digest = hashlib.blake2b(digest_size=8)
    for content in sorted(contents):
        digest.update(f"{content}\n".encode())
    return digest.hexdigest()


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
        membership=str(row["membership"]),
    )


def evaluation_contents(engine: Engine, evaluation_set_id: int) -> set[str]:
    query = select(evaluation_set_contents.c.content_hash).where(
        evaluation_set_contents.c.evaluation_set_id == evaluation_set_id
    )
    with engine.connect() as connection:
        return {str(content) for (content,) in connection.execute(query)}


def all_evaluation_contents(engine: Engine, through_evaluation_set_id: int | None = None) -> set[str]:
    """Every content any evaluation set holds (up to a set id): what training must never read."""
    query = select(evaluation_set_contents.c.content_hash).distinct()
    if through_evaluation_set_id is not None:
        query = query.where(evaluation_set_contents.c.evaluation_set_id <= through_evaluation_set_id)
    with engine.connect() as connection:
        return {str(content) for (content,) in connection.execute(query)}


def training_watermark(engine: Engine, group_number: int) -> int:
    """The highest raw row id any training run may have read; contents first stored above it are unseen."""
    query = select(func.max(evaluation_sets.c.trained_through_row_id)).where(
        evaluation_sets.c.group_number == group_number
    )
    with engine.connect() as connection:
        return int(connection.execute(query).scalar() or 0)


def contents_read_by_row_id_training(
    engine: Engine, group_number: int, legacy: EvaluationSet, watermark: int
) -> set[str]:
    """Contents training may have read while a version drawn by row id held its rows out: every row up
    to the watermark except those row ids (each row-id version holds all rows of the one before)."""
    held_out = select(evaluation_set_rows.c.row_id).where(
        evaluation_set_rows.c.evaluation_set_id == legacy.id
    )
    query = (
        select(raw_rows.c.content_hash)
        .distinct()
        .where(raw_rows.c.group_number == group_number)
        .where(raw_rows.c.id <= watermark)
        .where(raw_rows.c.id.not_in(held_out))
    )
    with engine.connect() as connection:
        return {str(content) for (content,) in connection.execute(query)}


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
) -> EvaluationChoice:
    """The current evaluation set for `rows` (distinct contents), drawing a new version when needed.

    `rows` holds one row per content, its first stored copy, of the classes training can use.
    """
    current = latest_evaluation_set(engine, group_number)
    if current is not None and not current.is_stale_for(rows):
        return EvaluationChoice(current, drawn_now=False)
    version = 1 if current is None else current.version + 1
    watermark = training_watermark(engine, group_number)
    kept: set[str] = set()
    dropped: set[str] = set()
    if current is not None:
        kept = evaluation_contents(engine, current.id)
        if not current.by_content:
            dropped = kept & contents_read_by_row_id_training(engine, group_number, current, watermark)
            kept -= dropped
    frame = rows.frame
    unseen = frame[(frame[ROW_ID] > watermark) & ~frame[CONTENT_HASH].isin(kept | dropped)]
    added = set(stratified_sample(unseen, fraction, seed + version))
    if current is not None and current.by_content and not added:
        log.info(
            "%s, but no content is unseen by training: v%s stays current",
            _staleness_reason(current, rows),
            current.version,
        )
        return EvaluationChoice(current, drawn_now=False)
    members = kept | added
    if not members:
        raise TrainingDataError(
            "no contents for an evaluation set: every stored content has already been used for training"
        )
    if current is not None and not current.by_content:
        reason = (
            f"replaces v{current.version}, drawn by row id before migration 0003: {len(dropped)} of its "
            f"{len(dropped) + len(kept)} contents had been read by training and are left out, "
            f"{len(kept)} kept, {len(added)} unseen contents added"
        )
    else:
        reason = _staleness_reason(current, rows)
    record = {
        "group_number": group_number,
        "version": version,
        "seed": seed + version,
        "fraction": fraction,
        "row_count": len(members),
        "classes": json.dumps(rows.classes),
        "batches": json.dumps(rows.batches),
        "drawn_through_row_id": rows.max_row_id,
        "trained_through_row_id": None,
        "digest": contents_digest(members),
        "reason": reason,
        "created_at": datetime.now(UTC),
        "membership": BY_CONTENT,
    }
    with engine.begin() as connection:
        new_id = connection.execute(insert(evaluation_sets).values(**record)).inserted_primary_key
        assert new_id is not None
        connection.execute(
            insert(evaluation_set_contents),
            [{"evaluation_set_id": int(new_id[0]), "content_hash": content} for content in sorted(members)],
        )
    latest = latest_evaluation_set(engine, group_number)
    assert latest is not None and latest.version == version
    log.info("evaluation set v%s: %s contents (%s)", version, len(members), reason)
    return EvaluationChoice(latest, drawn_now=True)


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
