"""Does the frozen evaluation set leak into training under the course's reference server? (issue #14)

The issue's experiment, reproducible and without waiting five minutes per batch: the data API
simulator runs in this process in `reference` mode (every batch samples the group's one slice) with a
clock the script moves. Group 4 is collected with three collects per batch over ten batches, through
the collector's own functions (`fetch_batch` over HTTP to the simulator app, `validate_batch`,
`store_batch`) into a SQLite raw store. Then one training run with the default families and budget
(`train_and_register`, what `ancora train` runs) through a real MLflow server. Measured:

- **overlap**: evaluation rows whose content training read. Both row sets are read back with the
  queries the run logged in MLflow as its training and evaluation datasets' source (its lineage),
  so the figure does not depend on how a given version of the code excludes the evaluation set;
- **gate macro F1**: the challenger's score on the evaluation set, which decides promotions;
- **holdout macro F1**: the same registered model on rows of `covertype.csv` the simulator never
  served (outside group 4's slice): a natural-distribution sample of 2,000 rows and a class-balanced
  one of 60 rows per class.

    uv run --frozen python -m benchmarks.leakage --label after [--collects-per-batch 3] [--group 4]

Results go to `benchmarks/results/leakage.json` under the label (one entry per label and settings).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from ancora.collection import fetch_batch, store_batch, validate_batch
from ancora.config import Settings
from ancora.store import open_raw_store
from ancora.training.run import TrainingRequest, train_and_register
from ancora_data_api.app import create_app
from benchmarks.holdout import never_collected, read_dataset, sample_holdouts, score_model
from benchmarks.machine import describe_machine
from tests.support.lineage import contents_of, logged_queries
from tests.support.mlflow_server import running_mlflow_server
from tests.support.repo import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"
DATA = REPO_ROOT.parent / "shared" / "data" / "covertype" / "covertype.csv"
ROTATION_SECONDS = 300.0
START = 1_700_000_000.0
REPORTED = (
    "version",
    "best_family",
    "eval_set_version",
    "eval_set_reason",
    "rows",
    "stored_rows",
    "distinct_contents",
    "training_rows",
    "evaluation_rows",
    "left_out_classes",
    "reason",
)
"""What the run's own result line says, as far as the version of the code reports it."""


class MovableClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def collect(settings: Settings, clock: MovableClock, batches: int, collects_per_batch: int) -> dict[str, Any]:
    """Every collect of the experiment, one second apart within a batch's window."""
    store = open_raw_store(settings.data_db_url)
    app = create_app(settings, clock=clock)
    responses = exhausted = 0
    with TestClient(app) as client:
        for batch in range(1, batches + 1):
            for attempt in range(collects_per_batch):
                fetched = fetch_batch(str(client.base_url), settings.group_number, timeout=30, client=client)
                if fetched.exhausted:  # the reference serves its last batch to one request only
                    exhausted += 1
                    break
                if fetched.batch_number != batch:
                    raise RuntimeError(f"expected batch {batch}, the simulator served {fetched.batch_number}")
                store_batch(store, fetched, validate_batch(fetched), run_id=f"bench-{batch}-{attempt}")
                responses += 1
                clock.now += 1
            clock.now += ROTATION_SECONDS + 1
    size = app.state.simulator.batch_size
    served = range(settings.group_number * size, (settings.group_number + 1) * size)
    with store.engine.connect() as connection:
        stored, distinct = connection.execute(
            sa.text("SELECT COUNT(*), COUNT(DISTINCT content_hash) FROM raw_rows WHERE group_number = :g"),
            {"g": settings.group_number},
        ).one()
    return {
        "responses": responses,
        "end_of_data_answers": exhausted,
        "stored_rows": int(stored),
        "distinct_contents": int(distinct),
        "served_positions": served,
    }


def overlap(client: MlflowClient, run_id: str, store_url: str) -> dict[str, Any]:
    """Evaluation rows whose content is among the contents training read, from the run's own lineage."""
    queries = logged_queries(client, run_id)
    training = contents_of(store_url, queries["training"])
    evaluation = contents_of(store_url, queries["evaluation"])
    trained_contents = set(training)
    leaked_rows = sum(content in trained_contents for content in evaluation)
    leaked_contents = set(evaluation) & trained_contents
    return {
        "training_rows": len(training),
        "training_distinct_contents": len(trained_contents),
        "evaluation_rows": len(evaluation),
        "evaluation_distinct_contents": len(set(evaluation)),
        "overlap_rows": leaked_rows,
        "overlap_percent": round(100 * leaked_rows / len(evaluation), 1) if evaluation else 0.0,
        "overlap_distinct_contents": len(leaked_contents),
    }


def code_commit() -> str:
    described = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return described.stdout.strip() or "unknown"


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ancora-bench-leakage-") as tmp:
        work = Path(tmp)
        with running_mlflow_server(work / "mlflow") as tracking_uri:
            settings = Settings(
                _env_file=None,
                state_dir=work / "state",
                data_db_url=f"sqlite:///{work / 'raw.db'}",
                mlflow_tracking_uri=tracking_uri,
                group_number=args.group,
                simulator_mode="reference",
                simulator_seed=args.seed,
                simulator_rotation_seconds=ROTATION_SECONDS,
                simulator_dataset_path=DATA,
                code_version=code_commit(),
            )
            collected = collect(settings, MovableClock(), args.batches, args.collects_per_batch)
            with Path(os.devnull).open("w") as quiet, redirect_stdout(quiet):  # MLflow's progress output
                outcome = train_and_register(settings, TrainingRequest.from_settings(settings))
            client = MlflowClient(tracking_uri)
            leakage = overlap(client, outcome.run_id, settings.data_db_url)
            dataset = read_dataset(DATA)
            pool = never_collected(dataset, collected.pop("served_positions"))
            holdouts = sample_holdouts(pool, seed=args.seed)
            holdout = score_model(outcome.model_uri, holdouts, tracking_uri)
            summary = outcome.summary()
    return {
        "label": args.label,
        "code": settings.code_version,
        "settings": {
            "group": args.group,
            "mode": "reference",
            "batches": args.batches,
            "collects_per_batch": args.collects_per_batch,
            "simulator_seed": args.seed,
            "families": settings.train_families,
            "search_budget": settings.train_search_budget,
        },
        "collected": collected,
        "trained": {key: summary[key] for key in REPORTED if key in summary},
        "leakage": leakage,
        "gate_macro_f1": round(outcome.challenger["macro_f1"], 4),
        "holdout_macro_f1": holdout["natural"]["macro_f1"],
        "balanced_holdout_macro_f1": holdout["balanced"]["macro_f1"],
        "holdout": holdout,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": describe_machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="Name of this measurement, e.g. before or after.")
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--collects-per-batch", type=int, default=3)
    parser.add_argument("--seed", type=int, default=14, help="Seed of the sampling and of the holdout.")
    args = parser.parse_args()
    result = run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "leakage.json"
    kept = json.loads(path.read_text()) if path.exists() else {}
    key = f"{args.label}/group{args.group}/{args.collects_per_batch}-per-batch"
    kept[key] = result
    path.write_text(json.dumps(dict(sorted(kept.items())), indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
