"""One small model per session, trained the way training builds candidates, on fixed rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from ancora.schema import COLUMN_NAMES, FEATURE_NAMES, LABEL_NAME
from ancora.training.data import with_raw_dtypes
from ancora.training.pipelines import build_pipeline

TRAINING_ROWS = slice(0, 8000)
HOLDOUT_ROWS = slice(16000, 20000)
"""Fixed and disjoint positions of the shared covertype sample (a shuffled draw of the full data set)."""
FAMILY = "random_forest"
PARAMS = {"n_estimators": 60, "max_depth": 16, "min_samples_leaf": 1, "max_features": "sqrt"}
"""The smallest forest of the search's grid: about 2 s to fit on two cores."""


@dataclass(frozen=True)
class FixedData:
    raw: pd.DataFrame
    """The CSV as the data API sends it: every value a string."""
    typed: pd.DataFrame

    def holdout(self) -> pd.DataFrame:
        return self.typed.iloc[HOLDOUT_ROWS]


@pytest.fixture(scope="session")
def fixed_data(covertype_csv: Path) -> FixedData:
    raw = pd.read_csv(covertype_csv, dtype=str, keep_default_na=False)
    assert tuple(raw.columns) == COLUMN_NAMES
    return FixedData(raw=raw, typed=with_raw_dtypes(raw))


@pytest.fixture(scope="session")
def model(fixed_data: FixedData) -> Pipeline:
    training = fixed_data.typed.iloc[TRAINING_ROWS]
    pipeline = build_pipeline(FAMILY, PARAMS, seed=0)
    return pipeline.fit(training.loc[:, list(FEATURE_NAMES)], training[LABEL_NAME])
