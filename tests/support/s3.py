"""S3 for tests: the moto server speaks the S3 API on loopback as the stand-in for MinIO.

No MinIO binary can be installed on these machines; moto is what the tests run instead, and it is
named so wherever it is used.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx

from tests.support.mlflow_server import stop_process
from tests.support.repo import REPO_ROOT
from tests.support.simulator import free_port

MLFLOW_ENTRYPOINT = REPO_ROOT / "mlflow" / "entrypoint.sh"
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "moto-test-key",
    "AWS_SECRET_ACCESS_KEY": "moto-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class MinioStandIn:
    """The moto S3 server standing in for MinIO: its endpoint and a client for assertions."""

    endpoint_url: str

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=DUMMY_CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def server_environment(self) -> dict[str, str]:
        """What the MLflow server process (and only it) needs to write artifacts to this S3."""
        return {"MLFLOW_S3_ENDPOINT_URL": self.endpoint_url, **DUMMY_CREDENTIALS}


@contextmanager
def minio_stand_in_moto_server() -> Iterator[MinioStandIn]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield MinioStandIn(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@contextmanager
def running_compose_mlflow(
    workdir: Path, backend_store_uri: str, artifacts_destination: str, extra_env: dict[str, str]
) -> Iterator[str]:
    """Run mlflow/entrypoint.sh natively, `init` then `server`, as the compose services do."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "MLFLOW_"))}
    env.update(extra_env)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        MLFLOW_BACKEND_STORE_URI=backend_store_uri,
        MLFLOW_ARTIFACTS_DESTINATION=artifacts_destination,
        MLFLOW_HOST="127.0.0.1",
        MLFLOW_PORT=str(port),
        MLFLOW_WORKERS="1",
        MLFLOW_ALLOWED_HOSTS=f"127.0.0.1:{port},localhost:{port}",
        MLFLOW_DB_WAIT_SECONDS="30",
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    )
    log_path = workdir / "mlflow.log"
    with log_path.open("ab") as log:
        subprocess.run(
            ["sh", str(MLFLOW_ENTRYPOINT), "init"], env=env, cwd=workdir, stdout=log, stderr=log, check=True
        )
        process = subprocess.Popen(
            ["sh", str(MLFLOW_ENTRYPOINT), "server"], env=env, cwd=workdir, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{log_path.read_text(errors='replace')}")
            try:
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"mlflow not healthy:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.3)
        yield url
    finally:
        stop_process(process)
