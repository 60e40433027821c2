"""Freshness: from a new batch becoming available to a champion that has seen it answering `/predict`.

The native stack is started exactly as `make up` starts it (free ports, a temporary state folder) with
the simulator in its `intended` mode (a fresh slice per batch: under the course server's `reference`
behaviour later batches repeat stored rows and announce nothing), its rotation accelerated to seconds
and the loop's accelerated settings
(`tests.support.native_stack.ACCELERATED_LOOP`: collection back to back, one quick candidate per
training, a 1 s alias poll). The real scheduler runs everything: nothing is triggered by hand.

While the simulator serves its batches this script watches from outside, through public interfaces
only: the simulator's state file (when each batch was advanced), `/predict` every 0.25 s (which
version answers), then Airflow's REST API (asset events, DAG runs, the training task's result) and
MLflow (version creation times). For every batch after the first it reports

- **collect wait**: the batch became available (previous advance + rotation) → a collect run fetched it;
- **collect run**: that fetch → the Asset event (validate, store, publish);
- **event → train start**: the event → the first training run that read the batch started (zero when
  a run that started just before the event read it); mostly the wait behind a training still running
  (one at a time: max_active_runs=1), reported apart as `behind_running_training`; the rest is the
  scheduler creating and starting the asset-triggered run;
- **train**: that run started (or the event, if later) → its model version registered and gated;
- **promotion → served**: registered → `/predict` first answered with it (the watcher's poll and load).

Freshness is the sum, measured where that first training was promoted. Where the gate kept the
champion the cycle reports its time to the decision, and when a later champion that read the batch
answered (`later_champion_served_after`); those depend on the data, not on the machinery.

    .venv/bin/python -m benchmarks.freshness [--rotation-seconds 60] [--batches 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from mlflow import MlflowClient

from ancora.serving.rows import EXAMPLE_ROW
from benchmarks.machine import describe_machine
from tests.support.native_stack import ACCELERATED_LOOP, RunningStack, all_pages, native_stack

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_SECONDS = 60.0
COLLECT_DAG = "covertype_collect"
TRAIN_DAG = "covertype_train"
PHASES = (
    "collect_wait",
    "collect_run",
    "event_to_train_start",
    "behind_running_training",
    "train",
    "promotion_to_served",
)


def epoch(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None


@dataclass
class Watcher:
    """Background observation of the simulator's advances and of the version answering /predict."""

    stack: RunningStack
    advances: dict[int, float] = field(default_factory=dict)
    first_answer: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        state_path = self.stack.settings.simulator_state_path
        group = str(self.stack.settings.group_number)
        with httpx.Client(timeout=10, trust_env=False) as http:
            while not self.stop.is_set():
                try:
                    last_advance, batch = json.loads(state_path.read_text())[group]
                    if batch > 0:
                        self.advances.setdefault(int(batch), float(last_advance))
                except (OSError, ValueError, KeyError):
                    pass
                try:
                    answer = http.post(f"{self.stack.settings.inference_url}/predict", json=EXAMPLE_ROW)
                    if answer.status_code == 200:
                        self.first_answer.setdefault(str(answer.json()["model_version"]), time.time())
                except httpx.HTTPError:
                    pass
                self.stop.wait(0.25)


def train_runs(airflow: httpx.Client) -> list[dict[str, Any]]:
    """Every training run with the asset events it consumed and its task's result (version, decision)."""
    runs = all_pages(airflow, f"/api/v2/dags/{TRAIN_DAG}/dagRuns", "dag_runs")
    for run in runs:
        base = f"/api/v2/dags/{TRAIN_DAG}/dagRuns/{run['dag_run_id']}"
        events = airflow.get(f"{base}/upstreamAssetEvents")
        run["events"] = events.json()["asset_events"] if events.status_code == 200 else []
        result = airflow.get(
            f"{base}/taskInstances/train/xcomEntries/return_value", params={"deserialize": True}
        )
        run["result"] = _xcom_value(result.json()["value"]) if result.status_code == 200 else None
    return runs


def _xcom_value(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def observe(stack: RunningStack, watcher: Watcher) -> dict[str, Any]:
    """Everything the cycles are computed from, as the public interfaces report it."""
    mlflow = MlflowClient(stack.settings.mlflow_tracking_uri)
    versions = {
        str(v.version): v.creation_timestamp / 1000
        for v in mlflow.search_model_versions(f"name='{stack.settings.registered_model_name}'")
    }
    with stack.airflow() as airflow:
        events = all_pages(
            airflow, "/api/v2/assets/events", "asset_events", source_dag_id=COLLECT_DAG, order_by="timestamp"
        )
        collect_runs = all_pages(airflow, f"/api/v2/dags/{COLLECT_DAG}/dagRuns", "dag_runs")
        trainings = train_runs(airflow)
    return {
        "advances": {str(batch): at for batch, at in sorted(watcher.advances.items())},
        "first_answer": watcher.first_answer,
        "versions_created": versions,
        "asset_events": events,
        "collect_runs": collect_runs,
        "train_runs": trainings,
    }


def measure_cycles(raw: dict[str, Any], rotation: float, batches: int) -> list[dict[str, Any]]:
    advances = {int(batch): at for batch, at in raw["advances"].items()}
    first_answer: dict[str, float] = raw["first_answer"]
    versions: dict[str, float] = raw["versions_created"]
    events: list[dict[str, Any]] = raw["asset_events"]
    collect_runs = {run["dag_run_id"]: run for run in raw["collect_runs"]}
    trainings: list[dict[str, Any]] = raw["train_runs"]

    cycles = []
    for batch in range(2, batches + 1):
        if batch not in advances or batch - 1 not in advances:
            continue
        available = advances[batch - 1] + rotation
        fetched = advances[batch]
        event = next((e for e in events if (e.get("extra") or {}).get("batch") == batch), None)
        cycle: dict[str, Any] = {"batch": batch, "collect_wait": fetched - available}
        cycles.append(cycle)
        if event is None:
            cycle["note"] = "no Asset event for this batch (no new contents stored)"
            continue
        event_at = epoch(event["timestamp"])
        assert event_at is not None
        cycle["collect_run"] = event_at - fetched
        cycle["collect_run_id"] = event["source_run_id"]
        collect = collect_runs.get(event["source_run_id"], {})
        cycle["collect_run_seconds"] = _span(collect.get("start_date"), collect.get("end_date"))
        done = [r for r in trainings if r["result"] is not None and r["start_date"]]
        training = next((r for r in done if batch in r["result"]["batches"]), None)
        if training is None:
            cycle["note"] = "no successful training read this batch"
            continue
        started_at = epoch(training["start_date"])
        assert started_at is not None
        version = str(training["result"]["version"])
        registered = versions[version]
        cycle.update(
            train_run_id=training["dag_run_id"],
            # A run that started just before the event still reads the batch when its task reaches
            # the store: then nothing was waited for, and its remaining time counts as training.
            event_to_train_start=max(0.0, started_at - event_at),
            behind_running_training=max(0.0, min(started_at, _busy_until(trainings, event_at)) - event_at),
            train=registered - max(started_at, event_at),
            version=version,
            decision=training["result"]["decision"],
            batches_trained=training["result"]["batches"],
            to_decision=registered - available,
        )
        if cycle["decision"] not in ("first", "promoted"):
            cycle["note"] = "the gate kept the champion: this cycle brought no new champion"
            later = next(
                (
                    r
                    for r in done
                    if batch in r["result"]["batches"] and r["result"]["decision"] in ("first", "promoted")
                ),
                None,
            )
            later_version = str(later["result"]["version"]) if later is not None else ""
            if later_version in first_answer:
                cycle["later_champion_with_batch"] = later_version
                cycle["later_champion_served_after"] = first_answer[later_version] - available
            continue
        served = first_answer.get(version)
        if served is None:
            cycle["note"] = f"version {version} never answered /predict"
            continue
        cycle["promotion_to_served"] = served - registered
        cycle["freshness"] = served - available
    return [{k: round(v, 2) if isinstance(v, float) else v for k, v in c.items()} for c in cycles]


def _busy_until(trainings: list[dict[str, Any]], event_at: float) -> float:
    """When the trainings running at `event_at` were done: training runs one at a time
    (max_active_runs=1), so a batch stored during a run waits for it unless that run reads it."""
    busy_until = event_at
    for run in trainings:
        begin, finish = epoch(run["start_date"]), epoch(run["end_date"])
        if begin is not None and finish is not None and begin <= busy_until < finish:
            busy_until = finish
    return busy_until


def _span(start: str | None, end: str | None) -> float | None:
    begin, finish = epoch(start), epoch(end)
    return finish - begin if begin is not None and finish is not None else None


def summarize(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "median": round(statistics.median(values), 1),
        "max": round(max(values), 1),
        "min": round(min(values), 1),
    }


def run_stack(args: argparse.Namespace, overrides: dict[str, str]) -> dict[str, Any]:
    """Start the stack, let the simulator serve `args.batches` batches, and observe the loop."""
    workdir = Path(tempfile.mkdtemp(prefix="ancora-freshness-"))
    loads: list[float] = []
    with native_stack(workdir, overrides) as stack:
        watcher = Watcher(stack)
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + args.rotation_seconds * (args.batches + 2) + 600
        while args.batches not in watcher.advances and time.monotonic() < deadline:
            loads.append(os.getloadavg()[0])
            time.sleep(5)
        # Let the last batch travel the whole loop: its training and, if promoted, its serving.
        settle = time.monotonic() + args.settle_seconds
        while time.monotonic() < settle:
            loads.append(os.getloadavg()[0])
            time.sleep(5)
        watcher.stop.set()
        thread.join()
        raw = observe(stack, watcher)
    raw.update(load_average_1m_samples=loads, workdir=str(workdir))
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rotation-seconds", type=float, default=60.0, help="Simulator rotation period.")
    parser.add_argument("--batches", type=int, default=10, help="Batches to observe (2..10).")
    parser.add_argument("--settle-seconds", type=float, default=180.0, help="Wait after the last batch.")
    parser.add_argument(
        "--observations", type=Path, help="Recompute the figures from a kept observations.json (no stack)."
    )
    args = parser.parse_args()

    # The intended mode on purpose: every batch brings fresh rows. Under the reference mode a batch
    # after the first few repeats stored contents, announces nothing, and has no freshness to measure.
    overrides = {
        **ACCELERATED_LOOP,
        "ANCORA_SIMULATOR_ROTATION_SECONDS": str(args.rotation_seconds),
        "ANCORA_SIMULATOR_MODE": "intended",
    }
    if args.observations:
        raw = json.loads(args.observations.read_text())
    else:
        machine, load_before = describe_machine(), [round(x, 2) for x in os.getloadavg()]
        raw = run_stack(args, overrides)
        raw.update(machine=machine, load_average_before=load_before, settings=overrides, batches=args.batches)
        keep = Path(raw["workdir"]) / "observations.json"
        keep.write_text(json.dumps(raw, indent=1))
        print(f"observations kept in {keep} (recompute: --observations {keep})")
    rotation = float(raw["settings"]["ANCORA_SIMULATOR_ROTATION_SECONDS"])
    cycles = measure_cycles(raw, rotation, int(raw["batches"]))

    promoted = [c for c in cycles if "freshness" in c]
    # The first champion's cycle also pays the inference service's one-time import of the model-loading
    # stack (MLflow, scikit-learn, skops); later swaps reuse it.
    steady = [c for c in promoted if c["decision"] == "promoted"]
    result = {
        "benchmark": "freshness",
        "target_seconds": TARGET_SECONDS,
        "rotation_seconds": rotation,
        "settings": raw["settings"],
        "cycles_measured": len(cycles),
        "cycles_promoted": len(promoted),
        "freshness_seconds": summarize([c["freshness"] for c in promoted]),
        "freshness_after_first_champion_seconds": summarize([c["freshness"] for c in steady]),
        "to_decision_seconds": summarize([c["to_decision"] for c in cycles if "to_decision" in c]),
        "breakdown_seconds": {phase: summarize([c[phase] for c in cycles if phase in c]) for phase in PHASES},
        "meets_target": bool(promoted) and max(c["freshness"] for c in promoted) <= TARGET_SECONDS,
        "cycles": cycles,
        "load_average_before": raw["load_average_before"],
        "load_average_1m_during": summarize(raw.get("load_average_1m_samples", [])),
        "machine": raw["machine"],
        "note": "load_average_1m_during tells how busy the two cores were (about 2 or less: quiet). A cycle "
        "the gate keeps brings no new champion: to_decision_seconds covers every cycle.",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "freshness.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "cycles"}, indent=2))


if __name__ == "__main__":
    main()
