"""Start the real data API simulator (`python -m ancora data-api`) for tests that talk HTTP to it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


def free_port() -> int:
    """A port nothing listens on right now; the OS picks it, so parallel tests do not collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_simulator(
    state_dir: Path,
    rotation_seconds: float,
    port: int | None = None,
    seed: int | None = None,
    mode: str | None = None,
) -> Iterator[str]:
    """Run the simulator with its state under ``state_dir``; yields its base URL, stops it on exit.

    The process runs in ``state_dir`` so no ``.env`` of the checkout leaks into it, and its output goes
    to ``state_dir/logs/data_api.log``, which a failed start quotes.
    """
    state_dir = Path(state_dir).resolve()
    port = port or free_port()
    env = {key: value for key, value in os.environ.items() if key != "ANCORA_SIMULATOR_STATE_PATH"}
    env.update(
        ANCORA_STATE_DIR=str(state_dir),
        ANCORA_BIND_HOST="127.0.0.1",
        ANCORA_SIMULATOR_PORT=str(port),
        ANCORA_SIMULATOR_ROTATION_SECONDS=str(rotation_seconds),
    )
    if seed is None:
        env.pop("ANCORA_SIMULATOR_SEED", None)
    else:
        env["ANCORA_SIMULATOR_SEED"] = str(seed)
    if mode is None:
        env.pop("ANCORA_SIMULATOR_MODE", None)
    else:
        env["ANCORA_SIMULATOR_MODE"] = mode
    log_path = state_dir / "logs" / "data_api.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ancora", "data-api"],
            cwd=state_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_healthy(process, url, log_path)
        yield url
    finally:
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
            output = log_path.read_text(errors="replace")
            raise RuntimeError(f"data API simulator exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(
        f"data API simulator not healthy at {url} after {STARTUP_TIMEOUT_SECONDS:g} s:\n"
        f"{log_path.read_text(errors='replace')}"
    )
