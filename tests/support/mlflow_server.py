"""Start a real MLflow tracking server (SQLite backend, ``--serve-artifacts``) for tests that talk to it."""

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

from tests.support.simulator import free_port

STARTUP_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class MlflowServer:
    """A running server: its tracking URI, and a way to stop it mid-test (the registry "goes down")."""

    uri: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.process)


@contextmanager
def running_mlflow_server(
    workdir: Path,
    backend_store_uri: str | None = None,
    artifacts_destination: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run ``mlflow server`` on a free loopback port; yields its tracking URI, stops it on exit.

    Defaults keep every byte under ``workdir``: ``mlflow.db`` as the backend store and ``artifacts/``
    as the artifact destination, served through the server so clients need no storage credentials.
    The output goes to ``workdir/mlflow.log``, which a failed start quotes.
    """
    with mlflow_server(workdir, backend_store_uri, artifacts_destination, env) as server:
        yield server.uri


@contextmanager
def mlflow_server(
    workdir: Path,
    backend_store_uri: str | None = None,
    artifacts_destination: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[MlflowServer]:
    """Like ``running_mlflow_server``, but yields the process too, so a test can stop it early."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    backend_store_uri = backend_store_uri or f"sqlite:///{workdir / 'mlflow.db'}"
    artifacts_destination = artifacts_destination or str(workdir / "artifacts")
    # The job runner (MLflow 3's Huey workers) is not used by any test and costs processes and CPU.
    child_env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
    child_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{child_env.get('PATH', '')}"
    argv = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_store_uri,
        "--artifacts-destination", artifacts_destination,
        "--serve-artifacts",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    log_path = workdir / "mlflow.log"
    url = f"http://127.0.0.1:{port}"
    with log_path.open("ab") as log:
        process = subprocess.Popen(argv, cwd=workdir, env=child_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_healthy(process, url, log_path)
        yield MlflowServer(url, process)
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after a grace period; the server's workers die with it."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited with {process.returncode}:\n{log_path.read_text(errors='replace')}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_process(process)
    raise TimeoutError(
        f"mlflow server not healthy at {url} after {STARTUP_TIMEOUT_SECONDS:g} s:\n"
        f"{log_path.read_text(errors='replace')}"
    )
