"""Validated rows from the raw store as a DataFrame with the dtypes the served model receives."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Engine, Select

from ancora.schema import CATEGORICAL_FEATURES, COLUMN_NAMES, FEATURE_NAMES, LABEL_NAME, NUMERIC_FEATURES

ROW_ID = "id"
BATCH = "batch_number"
CONTENT_HASH = "content_hash"


class TrainingDataError(ValueError):
    """The stored data cannot support training (too few rows, a class too small): more data, not a retry."""


@dataclass(frozen=True)
class RowSet:
    """Rows plus how they were read: the query text is the dataset's source, the digest its identity."""

    frame: pd.DataFrame
    query: str
    digest: str

    @property
    def features(self) -> pd.DataFrame:
        return self.frame.loc[:, list(FEATURE_NAMES)]

    @property
    def labels(self) -> pd.Series:
        return self.frame[LABEL_NAME]

    @property
    def batches(self) -> list[int]:
        return sorted(int(b) for b in self.frame[BATCH].unique())

    @property
    def classes(self) -> list[int]:
        return sorted(int(c) for c in self.frame[LABEL_NAME].unique())

    @property
    def max_row_id(self) -> int:
        return int(self.frame[ROW_ID].max()) if len(self.frame) else 0

    def __len__(self) -> int:
        return len(self.frame)


def with_raw_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns int64 and categoricals str, exactly what the data API's rows parse to."""
    typed = frame.copy()
    for name in (*NUMERIC_FEATURES, LABEL_NAME):
        typed[name] = typed[name].astype("int64")
    for name in CATEGORICAL_FEATURES:
        typed[name] = typed[name].astype(str)
    return typed


def rows_digest(frame: pd.DataFrame) -> str:
    """Identity of a row set: its row ids and content hashes, independent of read order."""
    pairs = sorted(zip(frame[ROW_ID].astype("int64"), frame[CONTENT_HASH], strict=True))
    digest = hashlib.blake2b(digest_size=8)
    for row_id, content in pairs:
        digest.update(f"{row_id}:{content}\n".encode())
    return digest.hexdigest()


def compile_query(engine: Engine, query: Select[Any]) -> str:
    return str(query.compile(engine, compile_kwargs={"literal_binds": True}))


def read_rows(engine: Engine, query: Select[Any]) -> RowSet:
    """Run one read query of the raw store and keep its text and a digest of what it returned."""
    with engine.connect() as connection:
        result = connection.execute(query)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    if frame.empty:
        frame = pd.DataFrame({name: pd.Series(dtype="int64") for name in (ROW_ID, BATCH)})
        frame[CONTENT_HASH] = pd.Series(dtype=str)
        for name in COLUMN_NAMES:
            frame[name] = pd.Series(dtype=str if name in CATEGORICAL_FEATURES else "int64")
    frame[ROW_ID] = frame[ROW_ID].astype("int64")
    frame[BATCH] = frame[BATCH].astype("int64")
    frame = with_raw_dtypes(frame)
    return RowSet(frame=frame, query=compile_query(engine, query), digest=rows_digest(frame))


def thin_classes(rows: RowSet, min_class_rows: int) -> dict[int, int]:
    """Classes with fewer rows than `min_class_rows`, and their counts."""
    counts = rows.labels.value_counts().sort_index()
    return {int(label): int(count) for label, count in counts.items() if count < min_class_rows}


def check_trainable(rows: RowSet, min_rows: int, min_class_rows: int) -> dict[int, int]:
    """Refuse data that cannot support training, with a message that says what is missing.

    `rows` holds one row per distinct content. A class with fewer than `min_class_rows` of them cannot
    be split and stratified: it is left out of the run (returned, with its count) rather than blocking
    training, because under the course's reference server a rare class of a group's slice may never
    reach the minimum. Training is refused when fewer than two classes remain.
    """
    if len(rows) < min_rows:
        raise TrainingDataError(
            f"only {len(rows)} distinct validated rows in the raw store; training needs at least "
            f"{min_rows} (ANCORA_TRAIN_MIN_ROWS): collect more batches first"
        )
    thin = thin_classes(rows, min_class_rows)
    if len(rows.classes) - len(thin) < 2:
        listed = ", ".join(f"class {label}: {count}" for label, count in thin.items())
        raise TrainingDataError(
            f"too few rows to stratify ({listed}); at least two classes need {min_class_rows} distinct "
            "rows each (ANCORA_TRAIN_MIN_CLASS_ROWS)"
        )
    return thin


def without_classes(rows: RowSet, classes: dict[int, int]) -> RowSet:
    """The rows minus those of `classes`; the query text stays the one that read them all."""
    if not classes:
        return rows
    kept = rows.frame[~rows.frame[LABEL_NAME].isin(list(classes))]
    return RowSet(frame=kept, query=rows.query, digest=rows_digest(kept))
