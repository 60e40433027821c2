"""Fixtures of the integration tests: one real MLflow server (SQLite backend), one real Slurm cluster
(munged, slurmctld, slurmd and an sshd on loopback) and one Python 3.9 virtualenv with the client's
wheel per session, made on first use."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from ancora.config import Settings, get_settings
from tests.support.client_wheel import client_virtualenv
from tests.support.mlflow_server import running_mlflow_server
from tests.support.slurm import SlurmCluster, running_slurm


@pytest.fixture(scope="session")
def sqlite_mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` (SQLite backend store, proxied local artifacts) shared by the session."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield url


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """The test cluster, shared by every module that submits to Slurm (it starts in a few seconds,
    but its jobs are what the tests wait for: one cluster keeps them queued on one node)."""
    with running_slurm(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a Python 3.9 virtualenv holding ancora-client's wheel and requests, built once."""
    return client_virtualenv(tmp_path_factory.mktemp("client-wheel"))


@pytest.fixture
def training_settings(
    tmp_path: Path, sqlite_mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings for one training test: its own raw store, registered model and experiment on the server.

    Small and fast on purpose: one worker, and the minimums lowered to the few hundred rows a test stores.
    """
    suffix = secrets.token_hex(3)
    values = {
        "ANCORA_DATA_DB_URL": f"sqlite:///{tmp_path / 'raw.db'}",
        "ANCORA_MLFLOW_TRACKING_URI": sqlite_mlflow_server,
        "ANCORA_REGISTERED_MODEL_NAME": f"covertype-{suffix}",
        "ANCORA_MLFLOW_EXPERIMENT": f"covertype-{suffix}",
        "ANCORA_TRAIN_MIN_ROWS": "200",
        "ANCORA_TRAIN_N_JOBS": "1",
        "ANCORA_TRAIN_COMPILE_TIMING_MAX_ROWS": "256",
        "ANCORA_CODE_VERSION": "test",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
