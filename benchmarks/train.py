"""Training benchmark: the full default search on 18,000 covertype rows, through a real MLflow.

Holds out a seeded sample of 2,000 of the 20,000 rows that the system never stores, stores the other
18,000 in a SQLite raw store as ten batches, starts `mlflow server` (SQLite backend, proxied
artifacts), runs `ancora train` once as a child process with the default families and budget, and
records the wall time, the peak memory of the whole process tree (the CLI and its worker processes,
sampled every 0.1 s), and every family's accuracy and macro F1 on the frozen evaluation set next to
the registered model's scores on the never-collected holdout: a gate inflated by leakage shows as an
evaluation-set score far above the holdout's.

    uv run python -m benchmarks.train
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from mlflow import MlflowClient

from ancora.config import Settings
from ancora.store import open_raw_store
from ancora.training.pipelines import FAMILIES
from benchmarks.holdout import read_dataset, sample_holdouts, score_model
from benchmarks.machine import describe_machine
from tests.support.mlflow_server import running_mlflow_server
from tests.support.repo import REPO_ROOT
from tests.support.training_data import read_csv_rows, store_rows

RESULTS = REPO_ROOT / "benchmarks" / "results"
DATA = REPO_ROOT.parent / "shared" / "data" / "covertype" / "covertype.csv"
TARGET_SECONDS = 60.0
HOLDOUT_ROWS = 2000
HOLDOUT_SEED = 16


class PeakMemory:
    """Peak resident memory of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                tree = [self.root, *self.root.children(recursive=True)]
                total = sum(p.memory_info().rss for p in tree if p.is_running())
            except psutil.Error:
                total = 0
            self.peak_bytes = max(self.peak_bytes, total)
            time.sleep(0.1)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ancora-bench-train-") as tmp:
        work = Path(tmp)
        store_url = f"sqlite:///{work / 'raw.db'}"
        everything = read_csv_rows(DATA)
        dataset = read_dataset(DATA)
        holdouts = {"natural": sample_holdouts(dataset, seed=HOLDOUT_SEED, size=HOLDOUT_ROWS)["natural"]}
        never_stored = set(holdouts["natural"].index)
        rows = [row for position, row in enumerate(everything) if position not in never_stored]
        store_rows(open_raw_store(store_url), rows, batches=10)
        with running_mlflow_server(work / "mlflow") as tracking_uri:
            settings = Settings(
                state_dir=work / "state", data_db_url=store_url, mlflow_tracking_uri=tracking_uri
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("ANCORA_")}
            env.update(
                ANCORA_STATE_DIR=str(settings.state_dir),
                ANCORA_DATA_DB_URL=store_url,
                ANCORA_MLFLOW_TRACKING_URI=tracking_uri,
            )
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, "-m", "ancora", "train"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            with PeakMemory(process.pid) as memory:
                stdout, stderr = process.communicate(timeout=1800)
            wall = time.perf_counter() - started
            if process.returncode != 0:
                raise RuntimeError(f"ancora train failed:\n{stderr[-4000:]}")
            result = json.loads(stdout.strip().splitlines()[-1])
            parent = MlflowClient(tracking_uri).get_run(result["run_id"])
            holdout = score_model(result["model_uri"], holdouts, tracking_uri)
            metrics = parent.data.metrics
            families = {
                family: {
                    "accuracy": round(metrics[f"eval_{family}_accuracy"], 4),
                    "macro_f1": round(metrics[f"eval_{family}_macro_f1"], 4),
                }
                for family in FAMILIES
            }
    return {
        "benchmark": "train",
        "rows": len(rows),
        "batches": 10,
        "families": list(FAMILIES),
        "search_budget": settings.train_search_budget,
        "candidates": int(parent.data.params["candidates"]),
        "n_jobs": settings.train_n_jobs,
        "wall_seconds": round(wall, 1),
        "target_seconds": TARGET_SECONDS,
        "meets_target": wall <= TARGET_SECONDS,
        "peak_memory_mib": round(memory.peak_bytes / 2**20),
        "training_rows": result["training_rows"],
        "evaluation_rows": result["evaluation_rows"],
        "holdout_rows": HOLDOUT_ROWS,
        "best_family": result["best_family"],
        "registered": result["challenger"],
        "gate_macro_f1": round(result["challenger"]["macro_f1"], 4),
        "holdout_macro_f1": holdout["natural"]["macro_f1"],
        "registered_on_never_collected_holdout": holdout,
        "per_family_on_evaluation_set": families,
        "load_average_1m_before": load_before,
        "machine": describe_machine(),
        "note": "load_average_1m_before tells how busy the two cores were when the run began "
        "(about 1 or less: quiet; the figures grow with the load).",
    }


def main() -> None:
    result = run()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
