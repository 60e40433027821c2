"""Run the real task service (`python -m ancora task-service`) for tests that talk HTTP to it."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.mlflow_server import stop_process
from tests.support.simulator import free_port

STARTUP_TIMEOUT_SECONDS = 120.0


def add_user(db_url: str, username: str, password: str, admin: bool = False) -> None:
    """Create a user straight in the service's database (what `ancora task-service users add` does)."""
    from ancora.remote.auth import hash_password
    from ancora.remote.store import TaskStore

    store = TaskStore.open(db_url)
    store.add_user(username, hash_password(password), is_admin=admin)
    store.engine.dispose()


@contextmanager
def running_task_service(state_dir: Path, env: Mapping[str, str]) -> Iterator[str]:
    """Start the service on a free port with ``env`` laid over this process's; yields its URL.

    With ANCORA_TASK_SERVICE_TLS_CERT_FILE in ``env`` it serves https, and the URL says so."""
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    child_env = {key: value for key, value in os.environ.items() if not key.startswith("ANCORA_")}
    child_env.update(env)
    child_env.update(
        ANCORA_STATE_DIR=str(state_dir), ANCORA_BIND_HOST="127.0.0.1", ANCORA_TASK_SERVICE_PORT=str(port)
    )
    child_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{child_env.get('PATH', '')}"
    log_path = state_dir / "logs" / "task_service.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ancora", "task-service"],
            cwd=state_dir,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    certificate = env.get("ANCORA_TASK_SERVICE_TLS_CERT_FILE")
    url = f"{'https' if certificate else 'http'}://127.0.0.1:{port}"
    try:
        verify = ssl.create_default_context(cafile=certificate) if certificate else True
        _wait_until_healthy(process, url, log_path, verify=verify)
        yield url
    finally:
        stop_process(process)


def _wait_until_healthy(
    process: subprocess.Popen[bytes], url: str, log_path: Path, verify: ssl.SSLContext | bool = True
) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"task service exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0, verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"task service not healthy at {url}:\n{log_path.read_text(errors='replace')}")
