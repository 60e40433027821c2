"""A holdout the system never collected: rows of the covertype CSV outside what the simulator served.

The gate scores models on the frozen evaluation set, drawn from the collected rows. If that set leaks
into training, the gate's score is inflated; a score on rows no part of the system ever saw is the
reference it should be close to. Benchmarks report both side by side.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from ancora.schema import COLUMN_NAMES, FEATURE_NAMES, LABEL_NAME
from ancora.training.data import with_raw_dtypes
from ancora.training.model_io import load_pipeline
from ancora.training.search import score

DEFAULT_SIZE = 2000
BALANCED_PER_CLASS = 60
"""Rows per class of the balanced holdout: below the rarest class's count outside one slice (78)."""


def read_dataset(path: Path) -> pd.DataFrame:
    """The CSV as the data API serves it (strings), typed the way training reads stored rows."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if tuple(frame.columns) != COLUMN_NAMES:
        raise ValueError(f"{path}: columns {list(frame.columns)} are not the covertype contract")
    return with_raw_dtypes(frame)


def never_collected(frame: pd.DataFrame, served: Iterable[int]) -> pd.DataFrame:
    """The rows whose positions the simulator never served, minus any whose content was served anyway."""
    served_positions = set(served)
    outside = frame[~frame.index.isin(served_positions)]
    served_contents = set(map(tuple, frame.loc[sorted(served_positions)].astype(str).to_numpy()))
    repeated = outside.astype(str).apply(tuple, axis=1).isin(served_contents)
    return outside[~repeated]


def sample_holdouts(pool: pd.DataFrame, seed: int, size: int = DEFAULT_SIZE) -> dict[str, pd.DataFrame]:
    """A natural-distribution sample and a class-balanced one, both seeded."""
    rng = np.random.default_rng(seed)
    natural = pool.loc[rng.choice(pool.index.to_numpy(), size=min(size, len(pool)), replace=False)]
    balanced = [
        group.loc[rng.choice(group.index.to_numpy(), size=min(BALANCED_PER_CLASS, len(group)), replace=False)]
        for _, group in pool.groupby(LABEL_NAME, sort=True)
    ]
    return {"natural": natural.sort_index(), "balanced": pd.concat(balanced).sort_index()}


def score_model(
    model_uri: str, holdouts: dict[str, pd.DataFrame], tracking_uri: str
) -> dict[str, dict[str, Any]]:
    """Macro F1 and accuracy of a registered model on each holdout."""
    mlflow.set_tracking_uri(tracking_uri)
    pipeline = load_pipeline(model_uri)
    scores: dict[str, dict[str, Any]] = {}
    for name, frame in holdouts.items():
        result, _ = score(pipeline, frame.loc[:, list(FEATURE_NAMES)], frame[LABEL_NAME])
        scores[name] = {
            "rows": len(frame),
            "macro_f1": round(result.macro_f1, 4),
            "accuracy": round(result.accuracy, 4),
        }
    return scores
