"""Start the native stack exactly as `make up` does (`python -m ancora stack up`), isolated for a test.

Every service gets a free port and the state lives in a temporary folder, so a test never meets a
stack a developer runs; the stack is always stopped (`ancora stack down`) when the block exits, and
a failure inside the block prints the tail of every service log first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from ancora.airflow_env import ADMIN_USER, passwords_file
from ancora.config import Settings
from ancora.stack.processes import ProcessInfo, stack_processes
from tests.support.simulator import free_port

HTTP_TIMEOUT = 60.0
"""Generous: the single API server worker answers slowly while the machine is busy starting things."""

NOT_SERVICE_PORTS = frozenset({"hpc_port"})
"""Port settings that name a remote machine's port, not one the native stack listens on."""

T = TypeVar("T")


def stack_port_fields() -> list[str]:
    """Every ``*_port`` setting of a local service, so a service added later gets a free port too."""
    return sorted(
        name for name in Settings.model_fields if name.endswith("_port") and name not in NOT_SERVICE_PORTS
    )


def isolated_stack_env(state_dir: Path, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without its ANCORA_*/AIRFLOW* settings, plus free ports and a state folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANCORA_", "AIRFLOW"))}
    env.update({f"ANCORA_{name.upper()}": str(free_port()) for name in stack_port_fields()})
    env["ANCORA_STATE_DIR"] = str(state_dir)
    env["ANCORA_STACK_START_TIMEOUT_SECONDS"] = "300"
    env.update(overrides or {})
    return env


def settings_for(env: Mapping[str, str]) -> Settings:
    """The Settings the stack's processes build from ``env`` (no .env file: the stack runs elsewhere)."""
    values = {
        key.removeprefix("ANCORA_").lower(): value for key, value in env.items() if key.startswith("ANCORA_")
    }
    fields = {name: value for name, value in values.items() if name in Settings.model_fields}
    return Settings(_env_file=None, **fields)


@dataclass
class RunningStack:
    settings: Settings
    env: dict[str, str]
    workdir: Path
    up_output: str = ""
    python: str = sys.executable
    """The interpreter whose ``ancora`` runs the stack: this checkout's, or a test's own virtualenv."""

    def ancora(
        self, *args: str, timeout: float = 600, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run an `ancora` command with the stack's environment, as an operator's shell would."""
        return subprocess.run(
            [self.python, "-m", "ancora", *args],
            env=self.env,
            cwd=self.workdir,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def leaders(self) -> list[int]:
        return [
            int(json.loads(path.read_text())["pid"]) for path in sorted(self.settings.run_dir.glob("*.pid"))
        ]

    def service_pid(self, name: str) -> int:
        return int(json.loads((self.settings.run_dir / f"{name}.pid").read_text())["pid"])

    def processes(self) -> dict[int, ProcessInfo]:
        return stack_processes(self.leaders())

    def admin_password(self) -> str:
        return str(json.loads(passwords_file(self.settings).read_text())[ADMIN_USER])

    def airflow(self) -> httpx.Client:
        """A client logged in as the generated admin user, the way a person logs in to the UI."""
        response = httpx.post(
            f"{self.settings.airflow_api_url}/auth/token",
            json={"username": ADMIN_USER, "password": self.admin_password()},
            timeout=HTTP_TIMEOUT,
            trust_env=False,
        )
        assert response.status_code == 201, response.text
        token = response.json()["access_token"]
        return httpx.Client(
            base_url=self.settings.airflow_api_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=HTTP_TIMEOUT,
            trust_env=False,
        )

    def log_tails(self, lines: int = 40) -> str:
        """The end of every service log and of the newest Airflow task logs, for a failure report."""
        log_dir = self.settings.log_dir
        parts = []
        for path in sorted(log_dir.glob("*.log")):
            parts.append(f"===== {path.name} (last {lines} lines) =====\n{_tail(path, lines)}")
        task_logs = sorted(
            (log_dir / "airflow").glob("dag_id=*/**/*.log"), key=lambda p: p.stat().st_mtime, reverse=True
        )
        for path in task_logs[:4]:
            parts.append(f"===== {path.relative_to(log_dir)} =====\n{_tail(path, lines)}")
        return "\n".join(parts) or f"(no logs in {log_dir})"


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as problem:
        return f"(unreadable: {problem})"


@contextmanager
def native_stack(
    workdir: Path, overrides: Mapping[str, str] | None = None, python: str = sys.executable
) -> Iterator[RunningStack]:
    """`ancora stack up` with free ports and state under ``workdir``; `ancora stack down` on exit.

    Whatever fails inside the block (the start included), the tails of the logs are printed before
    the stack stops, so pytest shows them with the failure.
    """
    env = isolated_stack_env(workdir / "state", overrides)
    running = RunningStack(settings=settings_for(env), env=env, workdir=workdir, python=python)
    try:
        up = running.ancora("stack", "up")
        running.up_output = up.stdout + up.stderr
        assert up.returncode == 0, running.up_output
        yield running
    except BaseException:
        print(running.log_tails(), file=sys.stderr)
        raise
    finally:
        down = running.ancora("stack", "down")
        if down.returncode != 0:
            print(f"ancora stack down failed:\n{down.stdout}{down.stderr}", file=sys.stderr)


def wait_for(condition: Callable[[], T], timeout: float, every: float = 2.0) -> T:
    """The first truthy value of ``condition()``, or its last value once ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def json_lines(output: str) -> list[dict[str, Any]]:
    """The JSON objects among a command's output lines (the CLI prints one per result)."""
    found = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


ACCELERATED_LOOP: dict[str, str] = {
    "ANCORA_COLLECT_SCHEDULE": "@continuous",
    "ANCORA_TRAIN_FAMILIES": "random_forest",
    "ANCORA_TRAIN_SEARCH_BUDGET": "1",
    "ANCORA_TRAIN_N_JOBS": "1",
    "ANCORA_MODEL_POLL_INTERVAL_SECONDS": "1",
}
"""The loop in seconds instead of hours (docs/operations-native.md, "The loop, accelerated"): collection
back to back, one quick candidate per training, a tight alias poll. The simulator's rotation is set
by each caller (ANCORA_SIMULATOR_ROTATION_SECONDS)."""


def all_pages(client: httpx.Client, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paginated Airflow REST v2 collection (pages of 100, its maximum)."""
    items: list[dict[str, Any]] = []
    while True:
        response = client.get(path, params={**params, "limit": 100, "offset": len(items)})
        response.raise_for_status()
        page = list(response.json()[key])
        items.extend(page)
        if len(page) < 100:
            return items
