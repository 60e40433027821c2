"""The prediction worker: a real child process predicting with real fitted pipelines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ancora.schema import FEATURE_NAMES, LABEL_NAME
from ancora.serving.batcher import batch_columns
from ancora.serving.registry import ServedModel, VersionRef
from ancora.serving.rows import features_frame
from ancora.serving.worker import PredictWorker, PredictWorkerFailed
from tests.support.inference import covertype_pipeline


@pytest.fixture(scope="module")
def data(covertype_csv: Path) -> pd.DataFrame:
    return pd.read_csv(covertype_csv, nrows=1200)


def _served(data: pd.DataFrame, version: str, seed: int) -> ServedModel:
    pipeline: Any = covertype_pipeline(n_estimators=5, seed=seed)
    train = data.iloc[:1000]
    pipeline.fit(train[list(FEATURE_NAMES)], train[LABEL_NAME])
    return ServedModel(
        ref=VersionRef("covertype", "champion", version, None, f"models:/m-{version}"),
        estimator=pipeline,
        classes=tuple(int(label) for label in pipeline.classes_),
        registry_uri="http://127.0.0.1:1",
        loaded_at=datetime.now(UTC),
        path=Path("."),
    )


@pytest.fixture(scope="module")
def models(data: pd.DataFrame) -> tuple[ServedModel, ServedModel]:
    return _served(data, "1", seed=0), _served(data, "2", seed=1)


@pytest.fixture(scope="module")
def worker() -> Iterator[PredictWorker]:
    worker = PredictWorker()
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def _rows(data: pd.DataFrame) -> list[tuple[Any, ...]]:
    holdout = data.iloc[1000:1040]
    return [tuple(row) for row in holdout[list(FEATURE_NAMES)].itertuples(index=False)]


def test_the_child_predicts_what_the_estimator_predicts_in_process(
    worker: PredictWorker, models: tuple[ServedModel, ServedModel], data: pd.DataFrame
) -> None:
    first, second = models
    rows = _rows(data)
    worker.prepare(first)
    for model in (first, second, first):  # the second is sent on demand; both stay loaded
        got = worker.predict_proba(model, batch_columns([rows]))
        np.testing.assert_array_equal(got, model.estimator.predict_proba(features_frame(rows)))
    assert not np.array_equal(
        worker.predict_proba(first, batch_columns([rows])),
        worker.predict_proba(second, batch_columns([rows])),
    )


def test_a_killed_child_is_replaced_and_the_call_succeeds(
    worker: PredictWorker, models: tuple[ServedModel, ServedModel], data: pd.DataFrame
) -> None:
    first, _ = models
    rows = _rows(data)
    worker.prepare(first)
    process = worker._process
    assert process is not None
    process.kill()
    process.wait()
    got = worker.predict_proba(first, batch_columns([rows]))
    np.testing.assert_array_equal(got, first.estimator.predict_proba(features_frame(rows)))
    assert worker._process is not None and worker._process.pid != process.pid


def test_an_error_in_the_child_is_reported_and_the_child_goes_on(
    worker: PredictWorker, models: tuple[ServedModel, ServedModel], data: pd.DataFrame
) -> None:
    first, _ = models
    rows = _rows(data)
    columns = batch_columns([rows])
    broken = {name: values for name, values in columns.items() if name != "Soil_Type"}
    with pytest.raises(PredictWorkerFailed, match="Soil_Type"):
        worker.predict_proba(first, broken)
    assert worker.predict_proba(first, columns).shape == (len(rows), len(first.classes))
