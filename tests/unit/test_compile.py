"""Compiling each family to ONNX Runtime on real covertype rows: parity, engine choice, fallbacks."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from ancora.schema import FEATURE_NAMES, LABEL_NAME
from ancora.serving.engines import (
    ENGINE_ONNXRUNTIME,
    ENGINE_SKLEARN,
    CompiledPipeline,
    CompileReport,
    Timing,
    frame_columns,
    predict_columns,
    read_compiled,
)
from ancora.serving.worker import PredictWorker
from ancora.training import compile as compiling
from ancora.training.compile import Compiled, compile_pipeline, crossover_rows, exact_copy, write_compiled
from ancora.training.pipelines import build_pipeline, for_serving

FAMILY_PARAMS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"C": 1.0, "class_weight": None},
    "random_forest": {"n_estimators": 30, "max_depth": 20, "min_samples_leaf": 1, "max_features": "sqrt"},
    "hist_gradient_boosting": {
        "learning_rate": 0.1,
        "max_iter": 40,
        "max_leaf_nodes": 31,
        "l2_regularization": 1.0,
    },
}
SIZES = (1, 32, 256)


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread() -> Iterator[None]:
    """HistGradientBoosting's OpenMP threads spin against each other on a busy 2-core machine (100x
    slower); one thread is what serving uses too."""
    with threadpool_limits(1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def rows(covertype_csv: Path) -> pd.DataFrame:
    return pd.read_csv(covertype_csv, nrows=5000)


@pytest.fixture(scope="module")
def evaluation(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.iloc[4000:].loc[:, list(FEATURE_NAMES)].reset_index(drop=True)


@pytest.fixture(scope="module")
def fitted(rows: pd.DataFrame) -> dict[str, Pipeline]:
    train = rows.iloc[:4000]
    return {
        family: for_serving(build_pipeline(family, params, seed=0)).fit(
            train.loc[:, list(FEATURE_NAMES)], train[LABEL_NAME]
        )
        for family, params in FAMILY_PARAMS.items()
    }


@pytest.fixture(scope="module")
def compiled(fitted: dict[str, Pipeline], evaluation: pd.DataFrame) -> dict[str, Compiled]:
    return {family: compile_pipeline(pipeline, evaluation, SIZES) for family, pipeline in fitted.items()}


@pytest.mark.parametrize("family", list(FAMILY_PARAMS))
def test_every_family_compiles_and_passes_parity_on_held_out_rows(
    family: str, compiled: dict[str, Compiled], fitted: dict[str, Pipeline], evaluation: pd.DataFrame
) -> None:
    result = compiled[family]
    report = result.report
    assert report.status == "compiled", report.reason
    assert report.serves_compiled and result.onnx_bytes
    assert report.parity is not None
    assert report.parity.rows == len(evaluation) + compiling.PROBE_ROWS
    assert report.parity.label_agreement >= 0.999
    assert report.parity.max_probability_diff <= 1e-4
    assert [timing.rows for timing in report.timings] == list(SIZES)
    assert report.compile_seconds > 0

    # Checked again here, independently of the report: the held-out rows and a never-seen category.
    engine = CompiledPipeline(result.onnx_bytes, report)
    probe = evaluation.head(200).assign(Soil_Type="C9999")
    for frame in (evaluation, probe):
        expected = fitted[family].predict_proba(frame)
        answer = engine.predict_proba(frame_columns(frame))
        assert answer.shape == expected.shape
        assert np.abs(answer - expected).max() <= 1e-4
        assert np.mean(answer.argmax(axis=1) == expected.argmax(axis=1)) >= 0.999


@pytest.mark.parametrize("family", ["random_forest", "hist_gradient_boosting"])
def test_folded_thresholds_decide_exactly_as_the_scaled_trees_do(
    family: str, fitted: dict[str, Pipeline], evaluation: pd.DataFrame
) -> None:
    """In scikit-learn itself the copy with raw-number cuts gives the very same probabilities."""
    original = fitted[family]
    exact, method = exact_copy(original)
    assert "folded" in method
    assert np.array_equal(exact.predict_proba(evaluation), original.predict_proba(evaluation))
    scaler = exact.named_steps["preprocess"].named_transformers_["numeric"]
    assert np.all(scaler.mean_ == 0) and np.all(scaler.scale_ == 1)
    assert not np.all(original.named_steps["preprocess"].named_transformers_["numeric"].mean_ == 0)


def test_the_crossover_is_where_scikit_learn_keeps_winning() -> None:
    def timings(*pairs: tuple[float, float]) -> list[Timing]:
        return [Timing(rows, c, s) for rows, (c, s) in zip((1, 8, 32, 128), pairs, strict=False)]

    assert crossover_rows(timings((1, 9), (2, 9), (3, 9), (4, 9))) is None
    assert crossover_rows(timings((1, 9), (2, 9), (10, 9), (20, 9))) == 32
    assert crossover_rows(timings((1, 9), (10, 9), (2, 9), (20, 9))) == 128, "only a lasting win counts"
    assert crossover_rows(timings((10, 9), (10, 9), (10, 9), (10, 9))) == 1


def test_the_engine_is_picked_per_call_size(compiled: dict[str, Compiled], evaluation: pd.DataFrame) -> None:
    """Below the crossover the compiled engine answers, from it on scikit-learn (here one that refuses)."""
    result = compiled["random_forest"]
    assert result.onnx_bytes is not None
    report = CompileReport(**{**result.report.__dict__, "crossover_rows": 32})
    engine = CompiledPipeline(result.onnx_bytes, report)
    columns = frame_columns(evaluation.head(31))
    assert predict_columns(RefusingEstimator(), engine, columns).shape == (31, 7)
    with pytest.raises(RuntimeError, match="scikit-learn was asked"):
        predict_columns(RefusingEstimator(), engine, frame_columns(evaluation.head(32)))
    with pytest.raises(RuntimeError, match="scikit-learn was asked"):
        predict_columns(RefusingEstimator(), None, columns)


def test_the_prediction_worker_picks_the_engine_per_call(
    compiled: dict[str, Compiled], evaluation: pd.DataFrame, tmp_path: Path
) -> None:
    model = served_with_crossover(compiled["hist_gradient_boosting"], 100, tmp_path)
    engine = model.compiled
    assert engine is not None
    engine.session()  # a built session must not travel to the child
    assert (model.engine_for(99), model.engine_for(100)) == (ENGINE_ONNXRUNTIME, ENGINE_SKLEARN)
    worker = PredictWorker()
    worker.start()
    try:
        small = worker.predict_proba(model, frame_columns(evaluation.head(5)))
        assert np.allclose(small, engine.predict_proba(frame_columns(evaluation.head(5))))
        with pytest.raises(Exception, match="scikit-learn was asked"):
            worker.predict_proba(model, frame_columns(evaluation.head(100)))
    finally:
        worker.stop()


def test_a_compile_that_raises_is_reported_and_never_raises(evaluation: pd.DataFrame) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.dummy import DummyClassifier
    from sklearn.preprocessing import FunctionTransformer

    odd = Pipeline(
        [
            ("preprocess", ColumnTransformer([("numbers", FunctionTransformer(np.log1p), ["Elevation"])])),
            ("model", DummyClassifier()),
        ]
    ).fit(evaluation, np.arange(len(evaluation)) % 3)
    result = compile_pipeline(odd, evaluation, SIZES)
    assert result.onnx_bytes is None
    assert result.report.status == "failed" and not result.report.serves_compiled
    assert result.report.reason
    assert result.tags()["serving_engine"] == "scikit-learn"


def test_a_parity_failure_is_reported_and_not_served(
    fitted: dict[str, Pipeline], evaluation: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(compiling, "PROBABILITY_TOLERANCE", 0.0)  # its real difference is about 1e-6
    result = compile_pipeline(fitted["logistic_regression"], evaluation, SIZES)
    assert result.report.status == "parity_failed", result.report.reason
    assert "parity failed" in result.report.reason and result.report.timings == []
    assert result.tags()["serving_engine"] == "scikit-learn"
    write_compiled(result, tmp_path / "compiled")
    engine, report = read_compiled(tmp_path)
    assert engine is None and report.status == "parity_failed"
    assert report.parity is not None and not report.parity.passed


def test_the_stored_artifact_round_trips(compiled: dict[str, Compiled], tmp_path: Path) -> None:
    engine, report = read_compiled(tmp_path)
    assert engine is None and report.status == "not_compiled"
    write_compiled(compiled["random_forest"], tmp_path / "compiled")
    engine, report = read_compiled(tmp_path)
    assert engine is not None and report == compiled["random_forest"].report
    again = pickle.loads(pickle.dumps(engine))
    assert again.onnx_bytes == engine.onnx_bytes and again.report == report
    (tmp_path / "compiled" / "model.onnx").unlink()
    engine, report = read_compiled(tmp_path)
    assert engine is None and report.status == "failed" and "missing" in report.reason
    (tmp_path / "compiled" / "compile.json").write_text("{not json")
    engine, report = read_compiled(tmp_path)
    assert engine is None and report.status == "failed" and "unreadable" in report.reason


def served_with_crossover(result: Compiled, crossover: int, path: Path) -> Any:
    """A served version whose compiled engine takes calls below ``crossover`` rows and whose
    scikit-learn side refuses every call."""
    from ancora.serving.registry import ServedModel, VersionRef

    assert result.onnx_bytes is not None
    report = CompileReport(**{**result.report.__dict__, "crossover_rows": crossover})
    return ServedModel(
        ref=VersionRef("covertype", "champion", "7", None, "models:/m-7"),
        estimator=RefusingEstimator(),
        classes=(1, 2, 3, 4, 5, 6, 7),
        registry_uri="unused",
        loaded_at=pd.Timestamp.now(tz="UTC").to_pydatetime(),
        path=path,
        compiled=CompiledPipeline(result.onnx_bytes, report),
        compile_report=report,
    )


class RefusingEstimator:
    """Stands for scikit-learn where a test must prove it is not called."""

    classes_ = np.arange(1, 8)

    def predict_proba(self, frame: Any) -> Any:
        raise RuntimeError("scikit-learn was asked")


def test_the_batcher_answers_compiled_calls_in_process_and_sends_larger_ones_to_the_worker(
    compiled: dict[str, Compiled], evaluation: pd.DataFrame, tmp_path: Path
) -> None:
    import asyncio

    from ancora.serving.batcher import MicroBatcher
    from ancora.serving.registry import ServedModel

    model = served_with_crossover(compiled["random_forest"], 100, tmp_path)
    engine = model.compiled
    assert engine is not None
    worker_calls: list[int] = []

    def worker(served: ServedModel, columns: dict[str, Any]) -> Any:
        worker_calls.append(len(columns["Elevation"]))
        return np.full((len(columns["Elevation"]), 7), 1 / 7)

    async def scenario(in_process: bool) -> tuple[Any, Any]:
        batcher = MicroBatcher(64, predict=worker, compiled_in_process=in_process)
        await batcher.start()
        try:
            small = await batcher.predict_proba(model, evaluation.head(5))
            large = await batcher.predict_proba(model, evaluation.head(150))
        finally:
            await batcher.stop()
        return small, large

    small, large = asyncio.run(scenario(in_process=True))
    assert np.allclose(small, engine.predict_proba(frame_columns(evaluation.head(5))))
    assert worker_calls == [150], "only the call above the crossover went to the worker"
    assert np.allclose(large, 1 / 7)
    worker_calls.clear()
    asyncio.run(scenario(in_process=False))
    assert worker_calls == [5, 150]


def test_the_loader_keeps_scikit_learn_when_the_compiled_model_cannot_serve_here(
    compiled: dict[str, Compiled], fitted: dict[str, Pipeline], tmp_path: Path
) -> None:
    """A broken artifact, an engine that answers the contract row differently, or the switch off."""
    from ancora.config import get_settings
    from ancora.serving.registry import ModelRegistry, VersionRef, contract_row
    from ancora.serving.rows import features_frame

    registry = ModelRegistry(get_settings())
    ref = VersionRef("covertype", "champion", "4", None, "models:/m-4")
    smoke = features_frame([contract_row()])
    forest = fitted["random_forest"]
    expected = forest.predict_proba(smoke)
    good = compiled["random_forest"]

    write_compiled(good, tmp_path / "compiled")
    engine, report = registry._compiled(ref, tmp_path, smoke, expected)
    assert engine is not None and report.serves_compiled

    engine, report = registry._compiled(ref, tmp_path, smoke, 1 - expected)
    assert engine is None and report.status == "parity_failed" and "contract row" in report.reason

    registry.use_compiled = False
    engine, report = registry._compiled(ref, tmp_path, smoke, expected)
    assert engine is None and "switched off" in report.reason
    registry.use_compiled = True

    registry.call_rows = 10_000  # a dispatch's batches, above this version's crossover
    report_with_crossover = CompileReport(**{**good.report.__dict__, "crossover_rows": 2048})
    write_compiled(Compiled(good.onnx_bytes, report_with_crossover), tmp_path / "compiled")
    engine, report = registry._compiled(ref, tmp_path, smoke, expected)
    assert engine is None and "above the crossover" in report.reason
    registry.call_rows = None

    (tmp_path / "compiled" / "model.onnx").write_bytes(b"not an onnx model")
    engine, report = registry._compiled(ref, tmp_path, smoke, expected)
    assert engine is None and report.status == "failed" and "does not run here" in report.reason
