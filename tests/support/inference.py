"""Start the real inference API (`python -m ancora serve`) and register small real models for it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd

from ancora.schema import CATEGORICAL_FEATURES, FEATURE_NAMES, LABEL_NAME, NUMERIC_FEATURES
from tests.support.mlflow_server import stop_process
from tests.support.simulator import free_port

STARTUP_TIMEOUT_SECONDS = 120.0
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


@dataclass(frozen=True)
class LoggedModel:
    """A model logged once; registering it under more names copies no artifacts."""

    model_uri: str
    run_id: str


def covertype_pipeline(n_estimators: int, seed: int, n_jobs: int = 1) -> object:
    """The training contract's shape: scaled numbers, one-hot categories, a random forest."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer(
        [
            ("numeric", StandardScaler(), list(NUMERIC_FEATURES)),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL_FEATURES)),
        ]
    )
    forest = RandomForestClassifier(n_estimators=n_estimators, n_jobs=n_jobs, random_state=seed)
    return Pipeline([("prep", prep), ("model", forest)])


def log_covertype_model(
    tracking_uri: str, frame: pd.DataFrame, n_estimators: int, seed: int, n_jobs: int = 1
) -> LoggedModel:
    """Fit on ``frame`` and log with ``mlflow.sklearn.log_model(..., name="model")`` like training does."""
    import mlflow
    import mlflow.sklearn

    pipeline = covertype_pipeline(n_estimators, seed, n_jobs)
    features = frame[list(FEATURE_NAMES)]
    pipeline.fit(features, frame[LABEL_NAME])  # type: ignore[attr-defined]
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("inference-tests")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("inference-tests")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        with mlflow.start_run(experiment_id=experiment_id) as run:
            info = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                input_example=features.head(2),
                pip_requirements=["scikit-learn", "pandas"],
                skops_trusted_types=SKOPS_TRUSTED_TYPES,
            )
    finally:
        mlflow.set_tracking_uri(None)
    return LoggedModel(model_uri=info.model_uri, run_id=run.info.run_id)


def register(tracking_uri: str, name: str, logged: LoggedModel, alias: str | None = None) -> str:
    """A new version of ``name`` pointing at an already logged model; returns the version."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    model_id = logged.model_uri.removeprefix("models:/")
    version = client.create_model_version(name, logged.model_uri, run_id=logged.run_id, model_id=model_id)
    deadline = time.monotonic() + 60
    while client.get_model_version(name, version.version).status != "READY":
        assert time.monotonic() < deadline, f"{name} version {version.version} never became READY"
        time.sleep(0.2)
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


@contextmanager
def running_inference(
    state_dir: Path,
    tracking_uri: str,
    model_name: str = "covertype",
    poll_seconds: float = 1.0,
    admin_token: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run `python -m ancora serve` against ``tracking_uri``; yields its base URL once /health answers."""
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANCORA_")}
    env.update(
        ANCORA_STATE_DIR=str(state_dir),
        ANCORA_BIND_HOST="127.0.0.1",
        ANCORA_INFERENCE_PORT=str(port),
        ANCORA_MLFLOW_TRACKING_URI=tracking_uri,
        ANCORA_REGISTERED_MODEL_NAME=model_name,
        ANCORA_MODEL_POLL_INTERVAL_SECONDS=str(poll_seconds),
        ANCORA_REGISTRY_TIMEOUT_SECONDS="2",
        ANCORA_REGISTRY_MAX_RETRIES="0",
        **(extra_env or {}),
    )
    if admin_token:
        env["ANCORA_ADMIN_TOKEN"] = admin_token
    log_path = state_dir / "inference.log"
    url = f"http://127.0.0.1:{port}"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ancora", "serve"],
            cwd=state_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"ancora serve exited:\n{log_path.read_text(errors='replace')}")
            try:
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"ancora serve not healthy:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        yield url
    finally:
        stop_process(process)


def wait_ready(url: str, timeout: float = 60.0) -> dict[str, object]:
    """Poll /ready until a model is loaded; the body names the version."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{url}/ready", timeout=5.0)
        if response.status_code == 200:
            body: dict[str, object] = response.json()
            return body
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready: {response.text}")
        time.sleep(0.1)
