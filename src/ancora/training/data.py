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


def check_trainable(rows: RowSet, min_rows: int, min_class_rows: int) -> None:
    """Refuse data that cannot be split and stratified, with a message that says what is missing."""
    if len(rows) < min_rows:
        raise TrainingDataError(
            f"only {len(rows)} validated rows in the raw store; training needs at least {min_rows} "
            "(ANCORA_TRAIN_MIN_ROWS): collect more batches first"
        )
    counts = rows.labels.value_counts().sort_index()
    small = {int(label): int(count) for label, count in counts.items() if count < min_class_rows}
    if small:
        listed = ", ".join(f"class {label}: {count}" for label, count in small.items())
        raise TrainingDataError(
            f"too few rows to stratify ({listed}); every class needs at least {min_class_rows} "
            "(ANCORA_TRAIN_MIN_CLASS_ROWS)"
        )
