"""Remote execution latency on a real local Slurm cluster: submit → RUNNING, cancel → CANCELLED, and
submit → a readable MLflow run id.

Starts the test cluster (munged, slurmctld, slurmd, sshd on loopback; tests/support/slurm.py), an
MLflow tracking server (SQLite) and the task service in inline mode. Then:

* submits a `sleep` job through the client library with the example zips, waits until the client
  reads RUNNING, cancels it and waits until the client reads CANCELLED (target: 5 s or less each);
  Slurm's own view (scontrol) is recorded beside it;
* submits seed 000's job (its Submitter arguments: `mlflow run measurements_regression_training_right`,
  account twinscie, n_estimators=2, random_state=42) and polls `get_task_run_id()` until it names a
  run: the service creates the run before the job starts, so this is about the submit call itself.
  The last seed run is left to finish, for the time the run id used to take (it was read from the
  job's log once the job had ended).

    uv run python -m benchmarks.remote_latency [--runs 5] [--seed-runs 5] [--poll-seconds 1.0]
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

from ancora.config import get_settings
from benchmarks.machine import describe_machine
from tests.support.mlflow_server import running_mlflow_server
from tests.support.repo import REPO_ROOT
from tests.support.slurm import running_slurm
from tests.support.task_service import add_user, running_task_service

RESULTS = REPO_ROOT / "benchmarks" / "results"
SHARED_PULSAR = REPO_ROOT.parent / "shared" / "data" / "pulsar" / "HTRU_2.csv"


SEED_SUBMISSION: dict[str, Any] = {
    "dataset_name": "Dataset_name",
    "runner_location": "atena02",
    "execution_mode": "mlflow",
    "experiment_name": "test_lib",
    "execution_command": "mlflow run measurements_regression_training_right",
    "instance_type": "gpu",
    "account": "twinscie",
    "n_estimators": 2,
    "random_state": 42,
}
"""Seed 000's submit example (section 1.3.1), as its Submitter is called there."""


def wait_for(handler: Any, status: str, timeout: float = 60.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if handler.get_task_status().json()["status"] == status:
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"task {handler.task_id} not {status} after {timeout} s")


def wait_for_run_id(handler: Any, timeout: float = 60.0) -> tuple[float, str, str]:
    """When get_task_run_id() first names a run: the time, the run id and the task's status then."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        answer = handler.get_task_run_id().json()
        if answer["run_id"]:
            return time.monotonic(), str(answer["run_id"]), str(answer["status"])
        time.sleep(0.05)
    raise TimeoutError(f"task {handler.task_id} has no run id after {timeout} s")


def seed_runs(folder: Path, count: int, submitter: Any, handler_class: Any) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for index in range(count):
        started = time.monotonic()
        response = submitter(
            dataset_file=str(folder / "test_data.zip"),
            processor_file=str(folder / "test_processor.zip"),
            **SEED_SUBMISSION,
        ).submit_task()
        accepted = time.monotonic()
        handler = handler_class(response.json()["id"])
        readable, run_id, status = wait_for_run_id(handler)
        run: dict[str, Any] = {
            "submit_answered_s": round(accepted - started, 3),
            "submit_to_run_id_s": round(readable - started, 3),
            "status_when_run_id_read": status,
            "run_id_in_submit_answer": response.json().get("run_id") == run_id,
        }
        if index == count - 1:
            completed = wait_for(handler, "COMPLETED", timeout=600)
            run["submit_to_completed_s"] = round(completed - started, 3)
            run["run_id_unchanged"] = handler.get_task_run_id().json()["run_id"] == run_id
        else:
            handler.cancel_task()
            wait_for(handler, "CANCELLED")
        runs.append(run)
    return runs


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(values), 3),
        "max_s": round(max(values), 3),
        "min_s": round(min(values), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed-runs", type=int, default=5, help="runs of seed 000's mlflow job")
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="ANCORA_REMOTE_POLL_SECONDS")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ancora-remote-bench-") as scratch:
        folder = Path(scratch)
        subprocess.run(
            [
                sys.executable,
                str(REPO_ROOT / "examples" / "make_zips.py"),
                str(SHARED_PULSAR),
                str(folder),
            ],
            check=True,
            capture_output=True,
        )
        password = secrets.token_urlsafe(12)
        with running_slurm(folder / "slurm") as cluster, running_mlflow_server(folder / "mlflow") as tracking:
            env = {
                **cluster.settings_env(folder / "home" / "ancora-tasks"),
                "ANCORA_HPC_JOB_SETUP": f'export PATH="{Path(sys.executable).parent}:$PATH"',
                "ANCORA_MLFLOW_TRACKING_URI": tracking,
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
                from ancora_client import Submitter, TaskHandler

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
                seeds = seed_runs(folder, args.seed_runs, Submitter, TaskHandler)

    result = {
        "machine": describe_machine(),
        "runs": args.runs,
        "poll_seconds": args.poll_seconds,
        "target_s": 5.0,
        "submit_to_running": summary([float(run["submit_to_running_s"]) for run in runs]),
        "cancel_to_cancelled": summary([float(run["cancel_to_cancelled_s"]) for run in runs]),
        "seed_submit_to_run_id": summary([float(run["submit_to_run_id_s"]) for run in seeds]),
        "seed_submit_to_completed_s": seeds[-1].get("submit_to_completed_s") if seeds else None,
        "each_run": runs,
        "each_seed_run": seeds,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "remote_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    shown = (
        "submit_to_running",
        "cancel_to_cancelled",
        "seed_submit_to_run_id",
        "seed_submit_to_completed_s",
    )
    print(json.dumps({key: result[key] for key in shown}, indent=2))


if __name__ == "__main__":
    main()
