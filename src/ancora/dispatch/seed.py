"""A demo datalake: the configured table, created and filled with rows of the shipped covertype sample.

So a native user can try dispatches without a database of their own (`ancora datalake seed`), and
tests and the benchmark build their datalakes the same way. The label is left out: a datalake holds
observations that await a prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ancora.dispatch.datalake import Datalake, DatalakeError, describe_error
from ancora.locations import COVERTYPE_CSV, shipped_dataset
from ancora.schema import CATEGORICAL, FEATURE_NAMES, FEATURES

SHIPPED_SAMPLE = shipped_dataset(COVERTYPE_CSV)
INSERT_CHUNK_ROWS = 10_000
CORRUPTIONS: tuple[tuple[str, Any], ...] = (
    ("Elevation", 99_999),
    ("Wilderness_Area", "Mars"),
    ("Slope", None),
    ("Soil_Type", "C0000"),
)
"""Values the contract refuses, cycled over the rows chosen to be invalid."""


@dataclass(frozen=True)
class SeedResult:
    table: str
    inserted: int
    invalid: int
    replaced: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def datalake_table(datalake: Datalake) -> sa.Table:
    """The table a demo datalake gets: integer key, typed nullable features, the prediction and marker."""
    layout = datalake.layout
    columns: list[sa.Column[Any]] = [sa.Column(layout.key, sa.Integer, primary_key=True, autoincrement=True)]
    for feature in FEATURES:
        kind: Any = sa.String(16) if feature.kind == CATEGORICAL else sa.Integer
        columns.append(sa.Column(layout.features[feature.name], kind, nullable=True))
    columns.append(sa.Column(layout.prediction, sa.SmallInteger, nullable=True))
    pending_index = [layout.prediction]
    if layout.marker:
        columns.append(sa.Column(layout.marker, sa.String(64), nullable=True))
        pending_index.append(layout.marker)
    table = sa.Table(layout.table, sa.MetaData(schema=layout.schema), *columns)
    sa.Index(f"ix_{layout.table}_pending", *(table.c[name] for name in pending_index))
    return table


def sample_rows(source: Path, rows: int, invalid_rows: int, seed: int) -> pd.DataFrame:
    """``rows`` feature rows of ``source`` (cycled when it has fewer), ``invalid_rows`` of them broken."""
    data = pd.read_csv(source, usecols=list(FEATURE_NAMES))[list(FEATURE_NAMES)]
    if data.empty:
        raise ValueError(f"{source} holds no rows")
    frame = data.iloc[np.arange(rows) % len(data)].reset_index(drop=True).astype(object)
    if invalid_rows:
        positions = np.random.default_rng(seed).choice(rows, size=min(invalid_rows, rows), replace=False)
        for number, position in enumerate(sorted(positions.tolist())):
            column, value = CORRUPTIONS[number % len(CORRUPTIONS)]
            frame.loc[position, column] = value
    return frame


def seed_datalake(
    datalake: Datalake,
    rows: int,
    source: Path = SHIPPED_SAMPLE,
    invalid_rows: int = 0,
    replace: bool = False,
    seed: int = 0,
) -> SeedResult:
    """Create the configured table if missing (drop it first with ``replace``) and append ``rows`` rows."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    if invalid_rows > rows:
        raise ValueError("invalid_rows cannot exceed rows")
    table = datalake_table(datalake)
    frame = sample_rows(source, rows, invalid_rows, seed)
    frame.columns = [datalake.layout.features[name] for name in FEATURE_NAMES]
    records = frame.to_dict("records")
    try:
        with datalake.engine.begin() as connection:
            if replace:
                table.drop(connection, checkfirst=True)
            table.create(connection, checkfirst=True)
            for start in range(0, len(records), INSERT_CHUNK_ROWS):
                connection.execute(table.insert(), records[start : start + INSERT_CHUNK_ROWS])
    except sa.exc.SQLAlchemyError as error:
        raise DatalakeError(f"seeding {datalake.where}: {describe_error(error)}") from error
    return SeedResult(datalake.layout.qualified_table, len(records), min(invalid_rows, rows), replace)
