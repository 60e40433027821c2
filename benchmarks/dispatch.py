"""Dispatch throughput: rows per second read, scored and written back, over 100,000 datalake rows.

One run on one machine, loopback only. A training-family random forest pipeline is fitted on the
shipped covertype sample, logged, compiled to ONNX Runtime by the registration step's code and
registered as ``covertype@champion`` in a temporary MLflow server. For each datalake (a throwaway
MariaDB database on 127.0.0.1:3306, and a SQLite file) the table is seeded with 100,000 rows
awaiting a prediction, then:

- ``stages``: each stage alone over all rows, in the dispatch's batches: reading the awaiting rows
  (keyset pages), checking them against the contract and predicting (the serving core), writing the
  predictions back (one transaction per batch), recording events and predictions;
- ``dispatch``: ``run_dispatch`` end to end on a freshly seeded table (what ``ancora dispatch`` and
  the DAG run), and a rerun that finds nothing to do.

The events database is SQLite, the native default. Each datalake is measured twice on the same
version: with the compiled engine picked per call size (the default) and with
``ANCORA_SERVING_COMPILED=false`` (scikit-learn for every call, the dispatch as it was before), their
end-to-end runs alternating. To compare code versions, see ``benchmarks.dispatch_versions``.

    .venv/bin/python -m benchmarks.dispatch
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ancora.config import Settings
from ancora.dispatch.datalake import Datalake, PendingBatch, open_datalake
from ancora.dispatch.events import Counters, open_events_store
from ancora.dispatch.run import load_champion, new_dispatch_id, run_dispatch, score_batch
from ancora.dispatch.seed import SHIPPED_SAMPLE, seed_datalake
from ancora.schema import FEATURE_NAMES, LABEL_NAME
from ancora.serving.registry import ServedModel
from ancora.training.compile import compile_pipeline, log_compiled
from ancora.training.pipelines import SKOPS_TRUSTED_TYPES, build_pipeline
from benchmarks.machine import describe_machine
from tests.support.databases import throwaway_mariadb
from tests.support.inference import register
from tests.support.mlflow_server import running_mlflow_server

RESULTS = Path(__file__).resolve().parent / "results"
FOREST = {"n_estimators": 100, "max_depth": 20, "min_samples_leaf": 1, "max_features": "sqrt"}
"""One point of the training grid of the random_forest family."""


def log_champion(tracking_uri: str, data: pd.DataFrame) -> dict[str, Any]:
    import mlflow
    import mlflow.sklearn

    pipeline = build_pipeline("random_forest", FOREST, seed=0)
    features = data[list(FEATURE_NAMES)]
    pipeline.fit(features, data[LABEL_NAME])
    mlflow.set_tracking_uri(tracking_uri)
    try:
        with mlflow.start_run() as run:
            info = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                input_example=features.head(2),
                pip_requirements=["scikit-learn", "pandas"],
                skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
            )
            compiled = compile_pipeline(pipeline, features.tail(4000))
            log_compiled(mlflow.MlflowClient(), info.model_uri, compiled)
            report = compiled.report
    finally:
        mlflow.set_tracking_uri(None)
    from tests.support.inference import LoggedModel

    register(tracking_uri, "covertype", LoggedModel(info.model_uri, run.info.run_id), alias="champion")
    return {
        "status": report.status,
        "reason": report.reason,
        "compile_seconds": round(report.compile_seconds, 3),
        "crossover_rows": report.crossover_rows,
        "parity": None if report.parity is None else report.as_dict()["parity"],
    }


CORES_FOR_TARGET = 2


def process_cpu_seconds() -> float:
    """User and system CPU of this process, all threads: what the dispatch costs, whatever the load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def database_server_cpu_seconds() -> float:
    """CPU used so far by the local MariaDB/MySQL server (0 when there is none, e.g. for SQLite)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, _, rest = text.partition(") ")
        if name.rsplit("(", 1)[-1] in ("mariadbd", "mysqld"):
            fields = rest.split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def rate(rows: int, seconds: float) -> dict[str, float]:
    return {"seconds": round(seconds, 3), "rows_per_s": round(rows / seconds) if seconds else 0.0}


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = action()
    return value, time.perf_counter() - started


def fresh_table(datalake: Datalake, rows: int) -> float:
    _, seconds = timed(lambda: seed_datalake(datalake, rows, SHIPPED_SAMPLE, replace=True, seed=0))
    return seconds


def stages(settings: Settings, datalake: Datalake, model: ServedModel, rows: int) -> dict[str, Any]:
    """Each stage alone, over every row, in the dispatch's batch size."""
    size = settings.dispatch_batch_rows
    batches: list[PendingBatch] = []

    def read_all() -> None:
        after = None
        while True:
            batch = datalake.read_pending(after, size)
            if not batch.keys:
                return
            batches.append(batch)
            after = batch.keys[-1]

    _, read_s = timed(read_all)
    position = 0
    scored = []
    started = time.perf_counter()
    for batch in batches:
        scored.append(score_batch(model, batch, position))
        position += len(batch)
    score_s = time.perf_counter() - started
    frame = pd.concat([score.frame for score in _checked(batches)], ignore_index=True)
    _, predict_only_s = timed(lambda: model.predict_proba(frame))

    dispatch_id = new_dispatch_id()
    written, write_s = timed(
        lambda: sum(datalake.write_back(dispatch_id, s.by_class, s.invalid_keys) for s in scored)
    )
    events = open_events_store(settings.dispatch_events_db_url)
    events.start(dispatch_id, None, datalake.layout.qualified_table, "benchmark stages")

    def record() -> None:
        for number, score in enumerate(scored, start=1):
            events.record_batch(
                dispatch_id, [("persisted", _now(), f"batch {number}")], score.predictions, Counters()
            )

    _, record_s = timed(record)
    assert written == rows, f"wrote {written} of {rows}"
    return {
        "batch_rows": size,
        "read": rate(rows, read_s),
        "check_and_predict": rate(rows, score_s),
        "predict_proba_one_call": rate(rows, predict_only_s),
        "write_back": rate(rows, write_s),
        "record_events_and_predictions": rate(rows, record_s),
    }


def _checked(batches: list[PendingBatch]) -> Iterator[Any]:
    from ancora.serving.rows import check_columns

    for batch in batches:
        yield check_columns(batch.columns)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def end_to_end(settings: Settings, datalake: Datalake, rows: int) -> dict[str, Any]:
    """``run_dispatch`` on a freshly seeded table, then a rerun that must find nothing to do."""
    fresh_table(datalake, rows)
    load_before = os.getloadavg()[0]
    cpu_before, server_before = process_cpu_seconds(), database_server_cpu_seconds()
    first, seconds = timed(lambda: run_dispatch(settings))
    cpu = process_cpu_seconds() - cpu_before
    server_cpu = database_server_cpu_seconds() - server_before
    assert first.state == "succeeded", first.error
    assert first.counters.rows_written == rows, first.as_dict()
    again, rerun_s = timed(lambda: run_dispatch(settings))
    assert again.counters.rows_read == 0 and again.counters.rows_written == 0
    return {
        **rate(rows, seconds),
        "model_load_s": round(first.model_load_seconds, 3),
        "without_model_load": rate(rows, first.seconds - first.model_load_seconds),
        "batches": first.batches,
        "cpu_seconds": {"dispatch_process": round(cpu, 2), "database_server": round(server_cpu, 2)},
        "rows_per_s_if_the_2_cores_were_idle": round(rows / ((cpu + server_cpu) / CORES_FOR_TARGET)),
        "rerun": {"seconds": round(rerun_s, 3), "rows_written": again.counters.rows_written},
        "load_average_1m_before": round(load_before, 2),
    }


ENGINES = {"_sklearn": {"serving_compiled": False}, "": {}}
"""Result-name suffix -> settings: scikit-learn for every call, and the default (compiled engine picked
per call size)."""


def bench_datalake(
    name: str, datalake_url: str, base: dict[str, Any], workdir: Path, rows: int, repeats: int
) -> dict[str, dict[str, Any]]:
    """Both engine settings on one datalake, their end-to-end runs alternating (the order reversed
    every round), so a host that slows down during the run weighs on both alike."""
    configured = {}
    results: dict[str, dict[str, Any]] = {}
    for suffix, engine in ENGINES.items():
        settings = Settings(
            **base,
            **engine,
            datalake_url=datalake_url,
            dispatch_events_db_url=f"sqlite:///{workdir / f'{name}{suffix}-events.db'}",
        )
        datalake = open_datalake(settings)
        model, load_s = timed(lambda settings=settings: load_champion(settings))
        result: dict[str, Any] = {
            "first_model_download_and_load_s": round(load_s, 3),
            "seed_s": round(fresh_table(datalake, rows), 3),
        }
        result["stages"] = stages(settings, datalake, model, rows)
        print(name + suffix, json.dumps(result), flush=True)
        configured[suffix] = (settings, datalake)
        results[name + suffix] = result
    runs: dict[str, list[dict[str, Any]]] = {suffix: [] for suffix in ENGINES}
    for number in range(repeats):
        for suffix in list(ENGINES) if number % 2 == 0 else list(ENGINES)[::-1]:
            settings, datalake = configured[suffix]
            runs[suffix].append(end_to_end(settings, datalake, rows))
            print(name + suffix, json.dumps(runs[suffix][-1]), flush=True)
    for suffix, (_, datalake) in configured.items():
        best = sorted(runs[suffix], key=lambda run: run["seconds"])
        results[name + suffix]["dispatch_median"] = best[len(best) // 2]
        results[name + suffix]["dispatch_runs"] = runs[suffix]
        datalake.engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-rows", type=int, default=None, help="default: ANCORA_DISPATCH_BATCH_ROWS")
    parser.add_argument("--n-jobs", type=int, default=None, help="default: ANCORA_DISPATCH_N_JOBS")
    parser.add_argument(
        "--mariadb-url",
        default=os.environ.get("ANCORA_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306"),
    )
    parser.add_argument("--repeats", type=int, default=3, help="end-to-end dispatches per datalake")
    parser.add_argument("--skip-mariadb", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    machine = describe_machine()
    machine["load_average_before"] = [round(value, 2) for value in os.getloadavg()]
    data = pd.read_csv(SHIPPED_SAMPLE)
    with tempfile.TemporaryDirectory(prefix="ancora-bench-dispatch-") as tmp:
        workdir = Path(tmp)
        with running_mlflow_server(workdir / "mlflow") as tracking_uri:
            compiled = log_champion(tracking_uri, data)
            base: dict[str, Any] = {
                "state_dir": workdir / "state",
                "mlflow_tracking_uri": tracking_uri,
                "registry_timeout_seconds": 30,
            }
            if args.batch_rows:
                base["dispatch_batch_rows"] = args.batch_rows
            if args.n_jobs:
                base["dispatch_n_jobs"] = args.n_jobs
            settings = Settings(**base)
            results: dict[str, Any] = {
                "machine": machine,
                "rows": args.rows,
                "model": f"random_forest training pipeline {FOREST}, fitted on {len(data)} rows",
                "dispatch_batch_rows": settings.dispatch_batch_rows,
                "dispatch_n_jobs": settings.dispatch_n_jobs,
                "events_db": "SQLite",
                "target_rows_per_s": 20_000,
                "compiled": compiled,
            }
            if not args.skip_mariadb:
                with throwaway_mariadb(args.mariadb_url, prefix="ancora_bench") as url:
                    results.update(bench_datalake("mariadb", url, base, workdir, args.rows, args.repeats))
            results.update(
                bench_datalake(
                    "sqlite", f"sqlite:///{workdir / 'lake.db'}", base, workdir, args.rows, args.repeats
                )
            )
    machine["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    results["summary"] = {
        name: {
            "rows_per_s": results[name]["dispatch_median"]["rows_per_s"],
            "meets_target": results[name]["dispatch_median"]["rows_per_s"] >= results["target_rows_per_s"],
            "scikit_learn_rows_per_s": results[f"{name}_sklearn"]["dispatch_median"]["rows_per_s"],
            "compiled_vs_scikit_learn": round(
                results[name]["dispatch_median"]["rows_per_s"]
                / results[f"{name}_sklearn"]["dispatch_median"]["rows_per_s"],
                2,
            ),
        }
        for name in ("mariadb", "sqlite")
        if name in results
    }
    results["note"] = (
        "rows_per_s is end to end (ancora dispatch: resolve and load the champion, read, check, predict, "
        "write back, record events and predictions), the median of the runs; compare load_average_1m_before "
        "with the core count: a machine shared with other work measures less. cpu_seconds does not depend "
        "on the load; rows_per_s_if_the_2_cores_were_idle divides the rows by the CPU of the dispatch and "
        "of the database server spread over 2 cores: an upper bound that assumes perfect overlap"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dispatch.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
