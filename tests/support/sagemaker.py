"""SageMaker test helpers: a pulsar model trained once per session, moto as the AWS stand-in."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ancora.config import PROJECT_ROOT
from ancora.sagemaker.data import write_training_csv
from tests.support.simulator import free_port

TRAIN_PROGRAM = PROJECT_ROOT / "sagemaker" / "train"
SERVE_PROGRAM = PROJECT_ROOT / "sagemaker" / "serve"
REFERENCE_ROW = (
    "99.3671875,41.57220208,1.547196967,4.154106043,27.55518395,61.71901588,2.20880796,3.662680136"
)
"""The issue's reference payload: a pulsar (class 1)."""
TEST_HYPERPARAMETERS = {"model_name": "pulsar", "n_estimators": "60", "n_jobs": "2"}
"""Fewer trees than the DAG's 100 keep the suite fast on two shared cores; the scores barely move."""

_trained: dict[str, Path] = {}


def train_natively(
    prefix: Path, pulsar_csv: Path, hyperparameters: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Lay out ``prefix`` like /opt/ml and run the real ``sagemaker/train`` program on it."""
    write_training_csv(pulsar_csv, prefix / "input" / "data" / "training" / "train.csv")
    config = prefix / "input" / "config" / "hyperparameters.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(hyperparameters))
    return subprocess.run(
        [sys.executable, str(TRAIN_PROGRAM), "--prefix", str(prefix)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def trained_pulsar(root: Path, pulsar_csv: Path) -> Path:
    """The prefix of a pulsar model trained by the real program, once per test session."""
    if "prefix" not in _trained:
        prefix = root / "pulsar-trained"
        result = train_natively(prefix, pulsar_csv, TEST_HYPERPARAMETERS)
        assert result.returncode == 0, result.stderr
        _trained["prefix"] = prefix
    return _trained["prefix"]


def tar_model(model_file: Path, destination: Path) -> Path:
    """``tar czf model.tar.gz <model>.pkl`` with the real tar, as the reference flow does."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["tar", "czf", str(destination), model_file.name], cwd=model_file.parent, check=True, timeout=60
    )
    return destination


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's server on a free loopback port: the AWS stand-in (S3, SageMaker, SageMaker runtime).

    moto keeps its state per process, not per server: tests reset it (``/moto-api/reset``) first.
    """
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""Credentials moto accepts; set so boto3 can never find real ones."""
