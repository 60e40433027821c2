"""Load a logged or registered covertype pipeline back from MLflow.

MLflow 3.17 refuses to deserialize any sklearn model (skops included) unless
MLFLOW_ALLOW_PICKLE_DESERIALIZATION is true, because the trusted-types list it would use is read from
the model itself. This loader downloads the artifacts and hands skops Ancora's own allow-list
instead, so a tampered model that lists extra types still fails to load.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import mlflow
from mlflow.models import Model

from ancora.training.pipelines import SKOPS_TRUSTED_TYPES

with warnings.catch_warnings():
    # On import skops finds the module of every scipy ufunc by asking each loaded module for the name
    # (pickle's whichmodule). Inside an Airflow task every ask of Airflow's deprecated-import shims
    # warns (a FutureWarning), and the task log got some 1,200 lines and seconds of delay per run.
    warnings.simplefilter("ignore", FutureWarning)
    import skops.io  # type: ignore[import-untyped]


class BrokenModel(RuntimeError):
    """The model's artifacts are missing or unreadable: it must not be registered or served."""


def load_pipeline(model_uri: str) -> Any:
    """The fitted sklearn pipeline behind `model_uri` (models:/name@alias, models:/<model_id>, runs:/...)."""
    with TemporaryDirectory(prefix="ancora-model-") as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        except mlflow.exceptions.MlflowException as problem:
            raise BrokenModel(f"cannot download {model_uri}: {problem}") from problem
        mlmodel = local / "MLmodel"
        if not mlmodel.is_file():
            raise BrokenModel(f"{model_uri} has no MLmodel file")
        flavor = Model.load(str(mlmodel)).flavors.get("sklearn", {})
        if flavor.get("serialization_format") != "skops":
            raise BrokenModel(f"{model_uri} is not a skops-serialized sklearn model")
        model_file = local / flavor["pickled_model"]
        try:
            return skops.io.load(model_file, trusted=list(SKOPS_TRUSTED_TYPES))
        except Exception as problem:
            raise BrokenModel(f"cannot load {model_uri}: {problem}") from problem
