"""SageMaker test helpers: a pulsar model trained once per session, moto as the AWS stand-in."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ancora.sagemaker.data import write_training_csv
from tests.support.repo import REPO_ROOT
from tests.support.simulator import free_port

TRAIN_PROGRAM = REPO_ROOT / "sagemaker" / "train"
SERVE_PROGRAM = REPO_ROOT / "sagemaker" / "serve"
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


PROVISIONING_TOKEN = "provisioning-token-for-the-tests-0123456789"
READ_TOKEN = "read-only-token-for-the-tests-0123456789abc"
"""Both over the 32-character minimum the settings enforce, and different (the settings insist)."""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


DOCKER_STAND_IN = """#!/usr/bin/env bash
# Stand-in for the docker CLI (no Docker engine runs here): records each call as a JSON line.
set -euo pipefail
stdin=""
if [ "${1:-}" = login ]; then stdin="$(cat)"; fi
python3 - "$DOCKER_STAND_IN_LOG" "$stdin" "$@" <<'PY'
import json, sys
with open(sys.argv[1], "a") as log:
    log.write(json.dumps({"argv": sys.argv[3:], "stdin": sys.argv[2]}) + "\\n")
PY
if [ -n "${DOCKER_STAND_IN_FAIL:-}" ] && [ "$1" = "$DOCKER_STAND_IN_FAIL" ]; then
  echo "stand-in docker: $1 refused" >&2
  exit 1
fi
"""


def docker_stand_in(folder: Path) -> tuple[Path, Path]:
    """A folder holding the ``docker`` stand-in (put it first on PATH), and the log it writes."""
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / "docker"
    program.write_text(DOCKER_STAND_IN)
    program.chmod(0o755)
    return folder, folder / "docker-calls.jsonl"


def docker_calls(log_path: Path) -> list[dict[str, Any]]:
    if not log_path.exists():
        return []
    return [json.loads(line) for line in log_path.read_text().splitlines()]
