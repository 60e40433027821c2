"""The serving side of the MLflow registry: which version holds the alias, and a loaded copy of it.

Artifacts are downloaded once per version into a local cache, so a restart or a swap back to an
earlier version does not fetch them again, and a half-written download never looks complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ancora.config import ModelSettings
from ancora.schema import COVER_TYPE_NAMES, FEATURES, NUMERIC
from ancora.serving.engines import (
    ENGINE_ONNXRUNTIME,
    ENGINE_SKLEARN,
    NOT_COMPILED,
    CompiledPipeline,
    CompileReport,
    frame_columns,
    predict_columns,
    read_compiled,
)
from ancora.serving.rows import features_frame

log = logging.getLogger(__name__)


class ChampionMissing(LookupError):
    """No version of the registered model holds the alias yet (or the model is not registered)."""


class RegistryUnavailable(RuntimeError):
    """The registry could not be asked: down, unreachable, or answering errors."""


class ModelLoadFailed(RuntimeError):
    """The version exists but could not be downloaded, deserialized or run on a contract row."""


@dataclass(frozen=True)
class VersionRef:
    """What the alias points at, as far as deciding whether to swap needs."""

    name: str
    alias: str
    version: str
    run_id: str | None
    source: str


@dataclass(frozen=True)
class ServedModel:
    """A loaded version with what the API reports about it; immutable, so swapping is one assignment."""

    ref: VersionRef
    estimator: Any
    classes: tuple[int, ...]
    registry_uri: str
    loaded_at: datetime
    path: Path
    load_seconds: float = 0.0
    """Download, deserialization and smoke test; a swap lags the alias by at most poll interval + this."""
    compiled: CompiledPipeline | None = None
    """The version's compiled engine when it passed parity and runs here; None: scikit-learn serves."""
    compile_report: CompileReport = NOT_COMPILED
    class_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = tuple(COVER_TYPE_NAMES.get(label, str(label)) for label in self.classes)
        object.__setattr__(self, "class_names", names)

    def engine_for(self, rows: int) -> str:
        """The engine a call of ``rows`` rows runs on."""
        return (
            ENGINE_ONNXRUNTIME if self.compiled is not None and self.compiled.takes(rows) else ENGINE_SKLEARN
        )

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        if self.compiled is not None and self.compiled.takes(len(frame)):
            return self.compiled.predict_proba(frame_columns(frame))
        return np.asarray(self.estimator.predict_proba(frame), dtype=np.float64)

    def predict_proba_columns(self, columns: Mapping[str, np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
        return predict_columns(self.estimator, self.compiled, columns)


def configure_mlflow_http(settings: ModelSettings) -> None:
    """Bound the MLflow client's HTTP calls in this process.

    Its defaults (120 s timeout, 7 retries with exponential backoff) would keep one registry check
    busy for minutes while the registry is down; serving wants a quick, visible failure instead.
    The MLflow client reads these variables at call time, and only from the environment.
    """
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(settings.registry_timeout_seconds)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(settings.registry_max_retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"


def contract_row() -> tuple[int | str, ...]:
    """A row inside every range of the contract, for a smoke prediction before a version is served."""
    return tuple(
        (column.minimum if column.minimum is not None else 0) if column.kind == NUMERIC else column.choices[0]
        for column in FEATURES
    )


class ModelRegistry:
    """Reads one alias of one registered model and loads the version it points at."""

    def __init__(self, settings: ModelSettings) -> None:
        from mlflow import MlflowClient

        self.name = settings.registered_model_name
        self.alias = settings.serving_alias
        self.registry_uri = settings.mlflow_tracking_uri
        self.cache_dir = settings.model_cache_dir
        self.n_jobs = settings.serving_n_jobs
        self.use_compiled = settings.serving_compiled
        self.call_rows: int | None = None
        """Rows of a typical call, when every call is about that size (a dispatch's batches): a version
        whose crossover is at or below it is not worth an ONNX Runtime session."""
        self._client = MlflowClient(tracking_uri=self.registry_uri, registry_uri=self.registry_uri)

    def current_version(self) -> VersionRef:
        """The version the alias points at now; raises ChampionMissing or RegistryUnavailable."""
        from mlflow.exceptions import MlflowException

        try:
            version = self._client.get_model_version_by_alias(self.name, self.alias)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                raise ChampionMissing(
                    f"no version of registered model '{self.name}' has the alias '{self.alias}' yet"
                ) from error
            raise RegistryUnavailable(f"registry at {self.registry_uri}: {error}") from error
        except Exception as error:
            raise RegistryUnavailable(f"registry at {self.registry_uri} unreachable: {error}") from error
        return VersionRef(
            name=self.name,
            alias=self.alias,
            version=str(version.version),
            run_id=version.run_id or None,
            source=str(version.source),
        )

    def load(self, ref: VersionRef) -> ServedModel:
        """Download (or reuse) the version's artifacts, deserialize, set serving n_jobs, smoke-test."""
        started = time.perf_counter()
        try:
            path = self._cached_artifacts(ref)
            estimator = load_estimator(path, self.n_jobs)
        except Exception as error:
            raise ModelLoadFailed(f"{ref.name} version {ref.version}: {error}") from error
        if not hasattr(estimator, "predict_proba"):
            raise ModelLoadFailed(f"{ref.name} version {ref.version} has no predict_proba")
        model = ServedModel(
            ref=ref,
            estimator=estimator,
            classes=tuple(int(label) for label in estimator.classes_),
            registry_uri=self.registry_uri,
            loaded_at=datetime.now(UTC),
            path=path,
        )
        smoke = features_frame([contract_row()])
        try:
            expected = model.predict_proba(smoke)
        except Exception as error:
            raise ModelLoadFailed(
                f"{ref.name} version {ref.version} cannot predict a contract row: {error}"
            ) from error
        compiled, report = self._compiled(ref, path, smoke, expected)
        return replace(
            model, compiled=compiled, compile_report=report, load_seconds=time.perf_counter() - started
        )

    def _compiled(
        self, ref: VersionRef, path: Path, smoke: pd.DataFrame, expected: np.ndarray[Any, Any]
    ) -> tuple[CompiledPipeline | None, CompileReport]:
        """The version's compiled engine if it passed parity at registration and runs here too.

        Anything wrong with it (no ONNX Runtime in this image, a broken artifact, a different answer on
        the contract row) leaves the version to scikit-learn, with the reason in ``/models``.
        """
        compiled, report = read_compiled(path, self.n_jobs)
        if compiled is None:
            return None, report
        if not self.use_compiled:
            return None, replace(
                report, reason="compiled engine switched off (ANCORA_SERVING_COMPILED=false)"
            )
        crossover = report.crossover_rows
        if self.call_rows is not None and crossover is not None and self.call_rows >= crossover:
            reason = f"calls of {self.call_rows} rows are above the crossover ({crossover}): scikit-learn"
            return None, replace(report, reason=reason)
        try:
            answer = compiled.predict_proba(frame_columns(smoke))
        except Exception as error:
            reason = f"the compiled model does not run here: {type(error).__name__}: {error}"
            log.warning("%s version %s: %s", ref.name, ref.version, reason)
            return None, replace(report, status="failed", reason=reason)
        if answer.shape != expected.shape or not np.allclose(answer, expected, atol=report_tolerance(report)):
            reason = "the compiled model answers the contract row differently from scikit-learn"
            log.warning("%s version %s: %s", ref.name, ref.version, reason)
            return None, replace(report, status="parity_failed", reason=reason)
        return compiled, report

    def _cached_artifacts(self, ref: VersionRef) -> Path:
        digest = hashlib.sha256(ref.source.encode()).hexdigest()[:12]
        target = self.cache_dir / ref.name / f"v{ref.version}-{digest}"
        if (target / "MLmodel").exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
        try:
            import mlflow.artifacts

            uri = self._client.get_model_version_download_uri(ref.name, ref.version)
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=str(staging), tracking_uri=self.registry_uri
                )
            )
            if not (local / "MLmodel").exists():
                raise ModelLoadFailed(f"{uri} holds no MLmodel file")
            shutil.rmtree(target, ignore_errors=True)
            local.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("cached %s version %s in %s", ref.name, ref.version, target)
        return target


def report_tolerance(report: CompileReport) -> float:
    return report.parity.probability_tolerance if report.parity is not None else 0.0


def load_estimator(path: Path | str, n_jobs: int) -> Any:
    """Deserialize a cached version and set its serving ``n_jobs`` (the API and its prediction worker)."""
    import mlflow.sklearn

    estimator = mlflow.sklearn.load_model(str(path))
    _set_n_jobs(estimator, n_jobs)
    return estimator


def _set_n_jobs(estimator: Any, n_jobs: int) -> None:
    """A forest fitted with n_jobs>1 starts threads on every call, which costs more than one row."""
    if not hasattr(estimator, "get_params"):
        return
    keys = [key for key in estimator.get_params(deep=True) if key == "n_jobs" or key.endswith("__n_jobs")]
    if keys:
        estimator.set_params(**dict.fromkeys(keys, n_jobs))
