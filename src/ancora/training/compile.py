"""Compile a registered pipeline to ONNX Runtime, check parity, measure the crossover, log it all.

Why ONNX Runtime: a scikit-learn forest pays about 15-25 ms of per-call overhead (input checks, one
Python call per tree), ONNX Runtime a few hundredths of a millisecond, and one converter (skl2onnx)
covers every family of the search, one-hot encoding included (measurements in docs/training.md).

Exactness: ONNX trees compare float32 values with float32 thresholds, while scikit-learn compares the
*scaled* feature (float32 for a forest, float64 for HistGradientBoosting) with a float64 threshold,
so converting as is flips about 1 row in 400 of a forest. The contract's numbers are whole, so for
every split on a numeric feature there is one integer cut ``k`` with ``x <= k`` exactly where
scikit-learn goes left; the compiled copy drops the scaling and splits at ``k + 0.5`` on the raw
number, which float32 holds exactly. Tree decisions are then identical; only the float32 sum of the
leaf values differs (about 1e-7). The linear family keeps its scaler (its output is a float sum anyway).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ancora.config import Settings
from ancora.schema import CATEGORICAL_FEATURES, FEATURE_NAMES
from ancora.serving.engines import (
    COMPILED_DIR,
    LABEL_AGREEMENT_MIN,
    ONNX_FILE,
    PROBABILITY_TOLERANCE,
    REPORT_FILE,
    CompiledPipeline,
    CompileReport,
    Parity,
    Timing,
    frame_columns,
)
from ancora.serving.rows import frame_from_columns

log = logging.getLogger(__name__)

CROSSOVER_SIZES = (1, 8, 32, 128, 512, 2048, 8192, 32768, 100_000)
"""Call sizes timed on both engines (up to a configured maximum); the crossover is the smallest from
which scikit-learn keeps winning."""
DEFAULT_TIMING_MAX_ROWS = 8192
TIMING_BUDGET_SECONDS = 0.25
"""Time spent per size and engine: a stable median, a few seconds in all (a slow call is timed once)."""
UNSEEN_CATEGORY = {"Soil_Type": "C0000"}
"""Probe rows: a contract-valid category never seen in training exercises the one-hot 'ignore' path."""
PROBE_ROWS = 50


class CompileFailed(RuntimeError):
    """The pipeline cannot be compiled (an unsupported step, a converter error)."""


@dataclass(frozen=True)
class Compiled:
    """The outcome of a compile: the ONNX bytes (None when it failed) and the report that goes with it."""

    onnx_bytes: bytes | None
    report: CompileReport

    def tags(self) -> dict[str, str]:
        """Registry tags of the version: which engine serves, the parity figures, compile time, crossover."""
        report = self.report
        parity = report.parity
        return {
            "serving_engine": report.runtime if report.serves_compiled else "scikit-learn",
            "compile_status": report.status,
            "compile_reason": report.reason[:500],
            "compile_seconds": f"{report.compile_seconds:.3f}",
            "parity_rows": "" if parity is None else str(parity.rows),
            "parity_label_agreement": "" if parity is None else f"{parity.label_agreement:.6f}",
            "parity_max_probability_diff": "" if parity is None else f"{parity.max_probability_diff:.3g}",
            "crossover_rows": "" if report.crossover_rows is None else str(report.crossover_rows),
        }

    def metrics(self) -> dict[str, float]:
        report = self.report
        metrics = {"compile_seconds": report.compile_seconds, "compiled": float(report.serves_compiled)}
        if report.parity is not None:
            metrics["parity_label_agreement"] = report.parity.label_agreement
            metrics["parity_max_probability_diff"] = report.parity.max_probability_diff
        if report.crossover_rows is not None:
            metrics["crossover_rows"] = float(report.crossover_rows)
        return metrics


def compile_pipeline(
    pipeline: Pipeline, evaluation: pd.DataFrame, sizes: tuple[int, ...] | None = None
) -> Compiled:
    """Compile, check parity on ``evaluation`` (the frozen evaluation set's features), time both engines.

    Never raises for a model problem: a failed conversion or parity is a report that says so, and the
    version is then served by scikit-learn.
    """
    started = time.perf_counter()
    versions = _versions()
    try:
        exact, method = exact_copy(pipeline)
        onnx_bytes = to_onnx_bytes(exact)
        compiled = CompiledPipeline(onnx_bytes, CompileReport(status="compiled", reason=""))
        compiled.session()
    except Exception as error:  # a converter raises anything from TypeError to its own errors
        log.warning("compiling the pipeline failed: %s", error, exc_info=True)
        report = CompileReport(
            status="failed",
            reason=f"{type(error).__name__}: {error}",
            compile_seconds=time.perf_counter() - started,
            versions=versions,
        )
        return Compiled(None, report)
    compile_seconds = time.perf_counter() - started
    parity = measure_parity(compiled, pipeline, parity_rows(evaluation))
    if not parity.passed:
        reason = (
            f"parity failed on {parity.rows} rows: labels agree on {parity.label_agreement:.4%} "
            f"(need {parity.label_agreement_min:.1%}), probabilities differ by up to "
            f"{parity.max_probability_diff:.2g} (allowed {parity.probability_tolerance:g})"
        )
        report = CompileReport(
            status="parity_failed",
            reason=reason,
            method=method,
            compile_seconds=compile_seconds,
            parity=parity,
            versions=versions,
        )
        return Compiled(onnx_bytes, report)
    timings = measure_timings(compiled, pipeline, evaluation, sizes or timing_sizes(DEFAULT_TIMING_MAX_ROWS))
    crossover = crossover_rows(timings)
    reason = (
        "ONNX Runtime serves every call size measured"
        if crossover is None
        else f"ONNX Runtime serves calls of fewer than {crossover} rows, scikit-learn larger ones"
    )
    report = CompileReport(
        status="compiled",
        reason=reason,
        method=method,
        compile_seconds=compile_seconds,
        parity=parity,
        crossover_rows=crossover,
        timings=timings,
        versions=versions,
    )
    return Compiled(onnx_bytes, report)


def exact_copy(pipeline: Pipeline) -> tuple[Pipeline, str]:
    """A copy whose tree splits act on raw whole numbers (see the module docstring), and how it was made."""
    if not isinstance(pipeline.steps[-1][1], RandomForestClassifier | HistGradientBoostingClassifier):
        return pipeline, "skl2onnx, pipeline as trained"
    exact = copy.deepcopy(pipeline)
    model = exact.steps[-1][1]
    preprocess = exact.steps[0][1]
    if not isinstance(preprocess, ColumnTransformer) or "numeric" not in preprocess.named_transformers_:
        raise CompileFailed("expected a ColumnTransformer with a 'numeric' part before the trees")
    scaler = preprocess.named_transformers_["numeric"]
    if not isinstance(scaler, StandardScaler):
        raise CompileFailed(
            f"expected a StandardScaler on the numeric columns, found {type(scaler).__name__}"
        )
    numeric = preprocess.output_indices_["numeric"]
    mean = np.asarray(scaler.mean_ if scaler.with_mean else np.zeros(scaler.n_features_in_), dtype=np.float64)
    scale = np.asarray(scaler.scale_ if scaler.with_std else np.ones(scaler.n_features_in_), dtype=np.float64)
    if isinstance(model, RandomForestClassifier):
        for tree in model.estimators_:
            _fold_splits(tree.tree_.feature, tree.tree_.threshold, numeric, mean, scale, float32=True)
    else:
        for iteration in model._predictors:
            for predictor in iteration:
                nodes = predictor.nodes
                splits = nodes["is_leaf"] == 0
                thresholds = nodes["num_threshold"].copy()
                features = np.where(splits, nodes["feature_idx"], -1)
                _fold_splits(features, thresholds, numeric, mean, scale, float32=False)
                nodes["num_threshold"] = thresholds
    scaler.mean_ = np.zeros_like(mean)
    scaler.scale_ = np.ones_like(scale)
    scaler.var_ = np.ones_like(scale)
    return exact, "skl2onnx, scaler folded into integer split thresholds"


def _fold_splits(
    features: np.ndarray[Any, Any],
    thresholds: np.ndarray[Any, Any],
    numeric: slice,
    mean: np.ndarray[Any, Any],
    scale: np.ndarray[Any, Any],
    float32: bool,
) -> None:
    """Rewrite, in place, each split on a scaled numeric feature as ``raw <= k + 0.5``."""
    on_numeric = (features >= numeric.start) & (features < numeric.stop)
    if not on_numeric.any():
        return
    column = features[on_numeric] - numeric.start
    threshold = thresholds[on_numeric]
    mu, sigma = mean[column], scale[column]

    def goes_left(raw: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        scaled = (raw - mu) / sigma  # as StandardScaler.transform computes it, in float64
        if float32:
            scaled = scaled.astype(np.float32).astype(np.float64)  # a forest casts its input to float32
        return np.asarray(scaled <= threshold)

    cut = np.clip(np.floor(threshold * sigma + mu), -(2.0**23), 2.0**23)
    for _ in range(4):  # the estimate is off by at most one rounding step
        cut = np.where(goes_left(cut + 1), cut + 1, cut)
        cut = np.where(goes_left(cut), cut, cut - 1)
    if not (goes_left(cut).all() and not goes_left(cut + 1).any()):
        raise CompileFailed("could not find an exact integer cut for every numeric split")
    thresholds[on_numeric] = cut + 0.5


@contextlib.contextmanager
def _boolean_attribute_fix() -> Iterator[None]:
    """skl2onnx 1.20 passes a Python bool for the leaves of a HistGradientBoosting tree where onnx 1.23
    wants an int (``TypeError: ... Expected an int, got a boolean``); coerce it during the conversion."""
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
        return original(*args, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true), **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original


def to_onnx_bytes(pipeline: Pipeline) -> bytes:
    """The pipeline as an ONNX graph with one ``[n, 1]`` input per feature and a probability matrix out."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    categorical = set(CATEGORICAL_FEATURES)
    inputs = [
        (name, StringTensorType([None, 1]) if name in categorical else FloatTensorType([None, 1]))
        for name in FEATURE_NAMES
    ]
    with _boolean_attribute_fix():
        model = to_onnx(pipeline, initial_types=inputs, options={"zipmap": False})
    return bytes(model.SerializeToString())


def parity_rows(evaluation: pd.DataFrame) -> pd.DataFrame:
    """The evaluation rows plus probe rows with a category the model never saw."""
    probes = evaluation.head(PROBE_ROWS).copy()
    for name, value in UNSEEN_CATEGORY.items():
        probes[name] = value
    frame = pd.concat([evaluation, probes], ignore_index=True)
    return frame.loc[:, list(FEATURE_NAMES)]


def measure_parity(compiled: CompiledPipeline, pipeline: Pipeline, rows: pd.DataFrame) -> Parity:
    thresholds = {"label_agreement_min": LABEL_AGREEMENT_MIN, "probability_tolerance": PROBABILITY_TOLERANCE}
    if len(rows) == 0:
        return Parity(rows=0, label_agreement=0.0, max_probability_diff=float("inf"), **thresholds)
    columns = frame_columns(rows)
    reference = np.asarray(pipeline.predict_proba(frame_from_columns(columns)), dtype=np.float64)
    candidate = compiled.predict_proba(columns)
    if candidate.shape != reference.shape:
        return Parity(rows=len(rows), label_agreement=0.0, max_probability_diff=float("inf"), **thresholds)
    agreement = float(np.mean(reference.argmax(axis=1) == candidate.argmax(axis=1)))
    difference = float(np.max(np.abs(reference - candidate)))
    return Parity(rows=len(rows), label_agreement=agreement, max_probability_diff=difference, **thresholds)


def measure_timings(
    compiled: CompiledPipeline, pipeline: Pipeline, evaluation: pd.DataFrame, sizes: tuple[int, ...]
) -> list[Timing]:
    """Median time of one call per size on each engine, as serving runs them (one thread; scikit-learn
    gets the DataFrame serving builds for it, ONNX Runtime the columns)."""
    source = evaluation.loc[:, list(FEATURE_NAMES)].reset_index(drop=True)
    timings = []
    for size in sizes:
        frame = source.iloc[np.arange(size) % len(source)]
        columns = frame_columns(frame)
        compiled_seconds = _median_call(compiled.predict_proba, columns)
        sklearn_seconds = _median_call(_sklearn_call(pipeline), columns)
        timings.append(Timing(rows=size, compiled_seconds=compiled_seconds, sklearn_seconds=sklearn_seconds))
    return timings


def _sklearn_call(pipeline: Pipeline) -> Callable[[Mapping[str, Any]], Any]:
    return lambda columns: pipeline.predict_proba(frame_from_columns(columns))


def _median_call(call: Callable[[Mapping[str, Any]], Any], columns: Mapping[str, Any]) -> float:
    """Median time of ``call(columns)`` over about ``TIMING_BUDGET_SECONDS``, after a warm-up call."""
    call(columns)
    samples: list[float] = []
    deadline = time.perf_counter() + TIMING_BUDGET_SECONDS
    while not samples or (time.perf_counter() < deadline and len(samples) < 50):
        started = time.perf_counter()
        call(columns)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def crossover_rows(timings: list[Timing]) -> int | None:
    """The smallest measured size from which scikit-learn is faster at every larger size, or None."""
    crossover = None
    for timing in reversed(timings):
        if timing.sklearn_seconds < timing.compiled_seconds:
            crossover = timing.rows
        else:
            break
    return crossover


def _versions() -> dict[str, str]:
    return {name: package_version(name) for name in ("onnxruntime", "skl2onnx", "onnx", "scikit-learn")}


def write_compiled(compiled: Compiled, directory: Path) -> None:
    """``model.onnx`` (when there is one) and ``compile.json`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    if compiled.onnx_bytes is not None:
        (directory / ONNX_FILE).write_bytes(compiled.onnx_bytes)
    (directory / REPORT_FILE).write_text(json.dumps(compiled.report.as_dict(), indent=2, default=str))


def timing_sizes(max_rows: int) -> tuple[int, ...]:
    return tuple(size for size in CROSSOVER_SIZES if size <= max_rows) or (1,)


def skipped(reason: str) -> Compiled:
    return Compiled(None, CompileReport(status="not_compiled", reason=reason))


def compile_and_log(
    pipeline: Pipeline, model_uri: str, evaluation: pd.DataFrame, settings: Settings
) -> Compiled:
    """Compile the pipeline behind ``model_uri`` (a ``models:/<model_id>`` of the active run) and log the
    artifact into that model's own artifacts (``compiled/``), so whoever downloads the version gets it;
    the figures also go to the model's tags and the active run's metrics."""
    import mlflow
    from mlflow import MlflowClient

    if settings.train_compile:
        compiled = compile_pipeline(
            pipeline, evaluation, timing_sizes(settings.train_compile_timing_max_rows)
        )
    else:
        compiled = skipped("compilation is switched off (ANCORA_TRAIN_COMPILE=false)")
    log_compiled(MlflowClient(), model_uri, compiled)
    mlflow.log_metrics(compiled.metrics())
    log.info("compiled %s: %s (%s)", model_uri, compiled.report.status, compiled.report.reason)
    return compiled


def log_compiled(client: Any, model_uri: str, compiled: Compiled) -> None:
    """``compiled/`` into the artifacts of the logged model ``models:/<model_id>``, figures as its tags."""
    model_id = model_uri.removeprefix("models:/")
    with tempfile.TemporaryDirectory(prefix="ancora-compiled-") as tmp:
        write_compiled(compiled, Path(tmp))
        client.log_model_artifacts(model_id, tmp, COMPILED_DIR)
    client.set_logged_model_tags(model_id, {f"ancora.{key}": value for key, value in compiled.tags().items()})


def report_summary(report: CompileReport) -> Mapping[str, Any]:
    """The few figures a training outcome line carries."""
    parity = report.parity
    return {
        "status": report.status,
        "serving_engine": report.runtime if report.serves_compiled else "scikit-learn",
        "compile_seconds": round(report.compile_seconds, 3),
        "label_agreement": None if parity is None else parity.label_agreement,
        "max_probability_diff": None if parity is None else parity.max_probability_diff,
        "crossover_rows": report.crossover_rows,
    }
