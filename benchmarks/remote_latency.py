"""Remote execution latency on a real local Slurm cluster: submit → RUNNING and cancel → CANCELLED.

Starts the test cluster (munged, slurmctld, slurmd, sshd on loopback; tests/support/slurm.py) and the
task service in inline mode, then submits a `sleep` job through the client library with the example
zips (the pulsar CSV and the MLflow project), waits until the client reads RUNNING, cancels it and
waits until the client reads CANCELLED. Slurm's own view (scontrol) is recorded beside it.
Target: 5 s or less for each.

    uv run python -m benchmarks.remote_latency [--runs 5] [--poll-seconds 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ancora.config import PROJECT_ROOT, get_settings
from benchmarks.machine import describe_machine
from tests.support.slurm import running_slurm
from tests.support.task_service import add_user, running_task_service

RESULTS = PROJECT_ROOT / "benchmarks" / "results"
SHARED_PULSAR = PROJECT_ROOT.parent / "shared" / "data" / "pulsar" / "HTRU_2.csv"


def wait_for(handler: Any, status: str, timeout: float = 60.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if handler.get_task_status().json()["status"] == status:
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"task {handler.task_id} not {status} after {timeout} s")


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(values), 3),
        "max_s": round(max(values), 3),
        "min_s": round(min(values), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="ANCORA_REMOTE_POLL_SECONDS")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ancora-remote-bench-") as scratch:
        folder = Path(scratch)
        subprocess.run(
            [
                sys.executable,
                str(PROJECT_ROOT / "examples" / "make_zips.py"),
                str(SHARED_PULSAR),
                str(folder),
            ],
            check=True,
            capture_output=True,
        )
        password = secrets.token_urlsafe(12)
        with running_slurm(folder / "slurm") as cluster:
            env = {
                **cluster.settings_env(folder / "home" / "ancora-tasks"),
                "ANCORA_REMOTE_EXECUTOR": "inline",
                "ANCORA_REMOTE_POLL_SECONDS": str(args.poll_seconds),
                "ANCORA_REMOTE_DB_URL": f"sqlite:///{folder / 'tasks.db'}",
            }
            add_user(env["ANCORA_REMOTE_DB_URL"], "bench", password)
            with running_task_service(folder / "service", env) as url:
                os.environ.update(
                    ANCORA_TASK_SERVICE_URL=url,
                    ANCORA_TASK_SERVICE_USERNAME="bench",
                    ANCORA_TASK_SERVICE_PASSWORD=password,
                )
                get_settings.cache_clear()
                from ancora.client import Submitter, TaskHandler

                runs: list[dict[str, float | str]] = []
                for _ in range(args.runs):
                    submitter = Submitter(
                        dataset_file=str(folder / "test_data.zip"),
                        processor_file=str(folder / "test_processor.zip"),
                        execution_mode="no-mlflow",
                        execution_command="sleep 600",
                        instance_type="cpu",
                    )
                    started = time.monotonic()
                    response = submitter.submit_task()
                    accepted = time.monotonic()
                    handler = TaskHandler(response.json()["id"])
                    running = wait_for(handler, "RUNNING")
                    slurm_running = cluster.job_state(response.json()["job_id"])
                    cancel_started = time.monotonic()
                    handler.cancel_task()
                    cancel_answered = time.monotonic()
                    cancelled = wait_for(handler, "CANCELLED")
                    runs.append(
                        {
                            "submit_answered_s": round(accepted - started, 3),
                            "submit_to_running_s": round(running - started, 3),
                            "slurm_state_when_running": slurm_running,
                            "cancel_answered_s": round(cancel_answered - cancel_started, 3),
                            "cancel_to_cancelled_s": round(cancelled - cancel_started, 3),
                            "slurm_state_after_cancel": cluster.job_state(response.json()["job_id"]),
                        }
                    )

    result = {
        "machine": describe_machine(),
        "runs": args.runs,
        "poll_seconds": args.poll_seconds,
        "target_s": 5.0,
        "submit_to_running": summary([float(run["submit_to_running_s"]) for run in runs]),
        "cancel_to_cancelled": summary([float(run["cancel_to_cancelled_s"]) for run in runs]),
        "each_run": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "remote_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("submit_to_running", "cancel_to_cancelled")}, indent=2))


if __name__ == "__main__":
    main()
