"""Everything training writes to MLflow: runs, datasets, candidate models, figures."""

from __future__ import annotations

from importlib.metadata import version as package_version
from typing import Any

import httpx
import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.pandas_dataset import PandasDataset, from_pandas
from mlflow.models import infer_signature
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.pipeline import Pipeline
from sqlalchemy.engine import make_url

from ancora.schema import COVER_TYPE_NAMES, FEATURE_NAMES, LABEL_NAME
from ancora.training.data import RowSet
from ancora.training.pipelines import SKOPS_TRUSTED_TYPES

MODEL_ARTIFACT = "model"
SERIALIZATION_FORMAT = "skops"
"""skops, not pickle: loading runs no code beyond the listed trusted types."""
INPUT_EXAMPLE_ROWS = 5


class TrackingUnavailable(RuntimeError):
    """The MLflow tracking server cannot be reached: retry later, nothing was registered."""


def check_tracking_server(tracking_uri: str, timeout: float = 10.0) -> None:
    """Fail fast, before minutes of fitting, when the tracking server is down."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        response = httpx.get(f"{tracking_uri.rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError as problem:
        raise TrackingUnavailable(
            f"MLflow tracking server at {tracking_uri} is unreachable: {problem}"
        ) from problem
    if response.status_code != 200:
        raise TrackingUnavailable(
            f"MLflow tracking server at {tracking_uri} is unhealthy: HTTP {response.status_code}"
        )


def masked_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


class RawStoreSource(DatasetSource):
    """An MLflow dataset source that is a query of Ancora's raw store (password masked)."""

    def __init__(self, url: str, query: str) -> None:
        self.url = masked_url(url)
        self.query = query

    @staticmethod
    def _get_source_type() -> str:
        return "ancora_raw_store"

    def load(self, engine_url: str | None = None) -> pd.DataFrame:
        """Re-run the query; pass the unmasked URL when the store has a password."""
        from sqlalchemy import create_engine, text

        with create_engine(engine_url or self.url).connect() as connection:
            return pd.read_sql(text(self.query), connection)

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source: Any) -> RawStoreSource:
        raise NotImplementedError("raw store sources are built by Ancora, never resolved from strings")

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "query": self.query}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> RawStoreSource:
        return cls(source_dict["url"], source_dict["query"])


def as_dataset(rows: RowSet, store_url: str, name: str) -> PandasDataset:
    frame = rows.frame.loc[:, [*FEATURE_NAMES, LABEL_NAME]]
    dataset: PandasDataset = from_pandas(
        frame, source=RawStoreSource(store_url, rows.query), targets=LABEL_NAME, name=name, digest=rows.digest
    )
    return dataset


def confusion_matrix_figure(labels: pd.Series, predictions: np.ndarray[Any, Any], title: str) -> Figure:
    """A confusion matrix as a figure object (no pyplot: no global state, no display needed)."""
    present = sorted(set(int(v) for v in labels) | set(int(v) for v in predictions))
    figure = Figure(figsize=(7, 6), layout="constrained")
    axes = figure.add_subplot()
    ConfusionMatrixDisplay.from_predictions(
        labels,
        predictions,
        labels=present,
        display_labels=[COVER_TYPE_NAMES.get(c, str(c)) for c in present],
        ax=axes,
        colorbar=False,
        xticks_rotation=45,
    )
    axes.set_title(title)
    return figure


def pip_requirements() -> list[str]:
    """Pinned explicitly: MLflow's own inference loads the model in a subprocess and takes seconds."""
    return [
        f"{name}=={package_version(name)}"
        for name in ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy")
    ]


def log_pipeline(pipeline: Pipeline, example: pd.DataFrame, params: dict[str, Any]) -> Any:
    """Log a fitted pipeline under the active run with its signature, input example and trusted types."""
    signature = infer_signature(example, pipeline.predict(example))
    return mlflow.sklearn.log_model(
        pipeline,
        name=MODEL_ARTIFACT,
        signature=signature,
        input_example=example,
        serialization_format=SERIALIZATION_FORMAT,
        skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
        pip_requirements=pip_requirements(),
        params={key: str(value) for key, value in params.items()},
    )


def input_example(features: pd.DataFrame) -> pd.DataFrame:
    return features.head(INPUT_EXAMPLE_ROWS).reset_index(drop=True)
