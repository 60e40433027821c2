"""The inference API serving compiled versions, and falling back to scikit-learn, from a real registry.

Three versions of one registered model: compiled (parity passed), compiled but failing parity, and one
that cannot be compiled. The alias moves between them; ``/models`` must say which engine serves and
why, and every answer must match scikit-learn's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline

from ancora.schema import FEATURE_NAMES, LABEL_NAME
from ancora.training import compile as compiling
from ancora.training.compile import compile_pipeline, log_compiled
from ancora.training.model_io import load_pipeline
from tests.support.inference import (
    LoggedModel,
    covertype_pipeline,
    log_covertype_model,
    register,
    running_inference,
    wait_ready,
)
from tests.support.mlflow_server import mlflow_server

pytestmark = pytest.mark.integration

TOKEN = "compiled-admin-token"
SIZES = (1, 32)


@dataclass(frozen=True)
class Versions:
    uri: str
    compiled: str
    parity_failed: str
    not_compilable: str


@pytest.fixture(scope="module")
def data(covertype_csv: Path) -> pd.DataFrame:
    return pd.read_csv(covertype_csv, nrows=3400)


@pytest.fixture(scope="module")
def holdout(data: pd.DataFrame) -> pd.DataFrame:
    return data.iloc[3000:3200].reset_index(drop=True)


def _compile(uri: str, logged: LoggedModel, evaluation: pd.DataFrame) -> None:
    mlflow.set_tracking_uri(uri)
    try:
        pipeline = load_pipeline(logged.model_uri)
        log_compiled(MlflowClient(uri), logged.model_uri, compile_pipeline(pipeline, evaluation, SIZES))
    finally:
        mlflow.set_tracking_uri(None)


def _log_dummy(uri: str, frame: pd.DataFrame) -> LoggedModel:
    """A pipeline skl2onnx cannot convert (no converter for DummyClassifier) that scikit-learn serves."""
    base = covertype_pipeline(n_estimators=1, seed=0)
    pipeline = Pipeline([("prep", base.named_steps["prep"]), ("model", DummyClassifier(strategy="prior"))])  # type: ignore[attr-defined]
    pipeline.fit(frame[list(FEATURE_NAMES)], frame[LABEL_NAME])
    mlflow.set_tracking_uri(uri)
    try:
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("inference-tests")
        experiment_id = (
            experiment.experiment_id if experiment else client.create_experiment("inference-tests")
        )
        with mlflow.start_run(experiment_id=experiment_id) as run:
            info = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                input_example=frame[list(FEATURE_NAMES)].head(2),
                pip_requirements=["scikit-learn", "pandas"],
                skops_trusted_types=["sklearn.tree._tree.Tree"],
            )
    finally:
        mlflow.set_tracking_uri(None)
    return LoggedModel(model_uri=info.model_uri, run_id=run.info.run_id)


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory, data: pd.DataFrame) -> Iterator[Versions]:
    evaluation = data.iloc[2500:3000].loc[:, list(FEATURE_NAMES)]
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as server:
        good = log_covertype_model(server.uri, data.iloc[:2500], n_estimators=20, seed=0)
        _compile(server.uri, good, evaluation)
        strict = log_covertype_model(server.uri, data.iloc[:2500], n_estimators=20, seed=1)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(compiling, "PROBABILITY_TOLERANCE", 0.0)
            patch.setattr(compiling, "LABEL_AGREEMENT_MIN", 1.01)
            _compile(server.uri, strict, evaluation)
        dummy = _log_dummy(server.uri, data.iloc[:2500])
        _compile(server.uri, dummy, evaluation)
        yield Versions(
            uri=server.uri,
            compiled=register(server.uri, "covertype", good, alias="champion"),
            parity_failed=register(server.uri, "covertype", strict),
            not_compilable=register(server.uri, "covertype", dummy),
        )


def _raw(rows: pd.DataFrame) -> list[dict[str, str]]:
    records: list[dict[str, str]] = rows[list(FEATURE_NAMES)].astype(str).to_dict("records")
    return records


def _serve_version(client: httpx.Client, versions: Versions, version: str) -> dict[str, object]:
    MlflowClient(versions.uri).set_registered_model_alias("covertype", "champion", version)
    answer = client.post("/reload", headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status().json()
    assert answer["model_version"] == version, answer
    models: dict[str, object] = client.get("/models").raise_for_status().json()
    assert models["version"] == version
    return models


def _reference(versions: Versions, version: str, rows: pd.DataFrame) -> np.ndarray:
    mlflow.set_tracking_uri(versions.uri)
    try:
        pipeline = load_pipeline(f"models:/covertype/{version}")
    finally:
        mlflow.set_tracking_uri(None)
    return np.asarray(pipeline.predict_proba(rows[list(FEATURE_NAMES)]))


def _check_answers(client: httpx.Client, versions: Versions, version: str, rows: pd.DataFrame) -> None:
    reference = _reference(versions, version, rows)
    batch = client.post("/predict/batch", json=_raw(rows)).raise_for_status().json()
    assert batch["model_version"] == version
    got = np.array([list(row["probabilities"].values()) for row in batch["predictions"]])
    assert np.abs(got - reference).max() <= 1e-4
    for index in range(5):
        single = client.post("/predict", json=_raw(rows.iloc[[index]])[0]).raise_for_status().json()
        values = np.array(list(single["probabilities"].values()))
        assert np.abs(values - reference[index]).max() <= 1e-4


def test_each_version_is_served_by_the_engine_its_compile_report_allows(
    tmp_path: Path, versions: Versions, holdout: pd.DataFrame
) -> None:
    with (
        running_inference(tmp_path, versions.uri, admin_token=TOKEN, poll_seconds=60) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        wait_ready(url)

        models = _serve_version(client, versions, versions.compiled)
        engine = models["engine"]
        assert isinstance(engine, dict)
        assert engine["compile_status"] == "compiled"
        assert engine["serving"] in ("onnxruntime", "onnxruntime+scikit-learn")
        assert engine["parity"]["passed"] is True
        assert engine["parity"]["label_agreement"] >= 0.999
        assert engine["parity"]["max_probability_diff"] <= 1e-4
        assert engine["parity"]["rows"] == 500 + compiling.PROBE_ROWS
        assert engine["compile_seconds"] > 0 and engine["versions"]["onnxruntime"]
        _check_answers(client, versions, versions.compiled, holdout)

        models = _serve_version(client, versions, versions.parity_failed)
        engine = models["engine"]
        assert isinstance(engine, dict)
        assert (engine["serving"], engine["compile_status"]) == ("scikit-learn", "parity_failed")
        assert "parity failed" in engine["reason"] and engine["parity"]["passed"] is False
        assert engine["compiled_below_rows"] is None
        _check_answers(client, versions, versions.parity_failed, holdout)

        models = _serve_version(client, versions, versions.not_compilable)
        engine = models["engine"]
        assert isinstance(engine, dict)
        assert (engine["serving"], engine["compile_status"]) == ("scikit-learn", "failed")
        assert "DummyClassifier" in engine["reason"] and engine["parity"] is None
        _check_answers(client, versions, versions.not_compilable, holdout)
