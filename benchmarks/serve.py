"""Serving throughput and latency: `mlflow models serve` against Ancora's inference API.

One run on one machine, loopback only, bounded loops. A 200-tree random forest pipeline is trained on
the covertype sample, logged and registered as ``covertype@champion`` in a temporary MLflow server
(SQLite, ``--serve-artifacts``). The same version is then served by

- ``mlflow models serve -m models:/covertype@champion --env-manager local`` with its defaults, and
- ``python -m ancora serve`` (micro-batching, serving n_jobs=1),

one after the other, and each is driven with single-row requests by httpx async clients at
concurrency 1, 8 and 32 (bounded by a request count and a time limit). Ancora also answers a
10,000-row batch (JSON and CSV), compared with an in-process ``predict_proba`` of the same rows. The
in-process limit is ``predict_proba`` on 32-row batches in this process, on the same cores.

    .venv/bin/python -m benchmarks.serve --data ../shared/data/covertype/covertype.csv
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from ancora.schema import FEATURE_NAMES
from benchmarks.machine import describe_machine
from tests.support.inference import log_covertype_model, register, running_inference, wait_ready
from tests.support.mlflow_server import running_mlflow_server, stop_process
from tests.support.simulator import free_port

RESULTS = Path(__file__).resolve().parent / "results"
CONCURRENCY = (1, 8, 32)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def drive(
    url: str, payload: Any, concurrency: int, max_requests: int, max_seconds: float
) -> dict[str, Any]:
    """Closed-loop load: ``concurrency`` clients, each sending the next request when one returns."""
    latencies: list[float] = []
    failures = 0
    started = time.perf_counter()
    deadline = started + max_seconds
    sent = 0

    async def worker() -> None:
        nonlocal sent, failures
        # One client (one connection) per simulated user: a single pooled httpx client serializes
        # on its pool and measures itself rather than the server.
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=1)) as client:
            (await client.post(url, json=payload)).raise_for_status()
            while sent < max_requests and time.perf_counter() < deadline:
                sent += 1
                begin = time.perf_counter()
                response = await client.post(url, json=payload)
                latencies.append(time.perf_counter() - begin)
                if response.status_code != 200:
                    failures += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "failures": failures,
        "seconds": round(elapsed, 2),
        "req_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
    }


def load_levels(url: str, payload: Any, max_requests: int, max_seconds: float) -> list[dict[str, Any]]:
    return [asyncio.run(drive(url, payload, c, max_requests, max_seconds)) for c in CONCURRENCY]


def median_seconds(action: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        action()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def in_process(model: Any, frame: pd.DataFrame, batch: pd.DataFrame, seconds: float) -> dict[str, Any]:
    one = frame.iloc[:1]
    thirty_two = frame.iloc[:32]
    single = median_seconds(lambda: model.predict_proba(one), 30)
    small = median_seconds(lambda: model.predict_proba(thirty_two), 30)
    calls = 0
    begin = time.perf_counter()
    while time.perf_counter() - begin < seconds:
        model.predict_proba(thirty_two)
        calls += 1
    limit = calls * 32 / (time.perf_counter() - begin)
    large = median_seconds(lambda: model.predict_proba(batch), 3)
    return {
        "predict_proba_1_row_ms": round(single * 1000, 1),
        "predict_proba_32_rows_ms": round(small * 1000, 1),
        "limit_rows_per_s_32_row_batches": round(limit, 1),
        "predict_proba_10000_rows_s": round(large, 3),
    }


@contextmanager
def mlflow_models_serve(tracking_uri: str, workdir: Path) -> Iterator[str]:
    """`mlflow models serve` with its defaults, as the MLflow docs start it."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    argv = [
        sys.executable, "-m", "mlflow", "models", "serve",
        "-m", "models:/covertype@champion", "--env-manager", "local",
        "-p", str(port), "-h", "127.0.0.1",
    ]  # fmt: skip
    log_path = workdir / "mlflow-models-serve.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(argv, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited:\n{log_path.read_text(errors='replace')}")
            try:
                if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(log_path.read_text(errors="replace"))
            time.sleep(0.2)
        yield url
    finally:
        stop_process(process)


def batch_through_ancora(url: str, batch: pd.DataFrame, repeats: int) -> dict[str, float]:
    records = batch.astype(str).to_dict("records")
    body = json.dumps(records).encode()
    csv_text = batch.to_csv(index=False).encode()
    with httpx.Client(base_url=url, timeout=300) as client:

        def post_json() -> None:
            client.post(
                "/predict/batch", content=body, headers={"content-type": "application/json"}
            ).raise_for_status()

        def post_csv() -> None:
            client.post(
                "/predict/batch", content=csv_text, headers={"content-type": "text/csv"}
            ).raise_for_status()

        post_json()
        return {
            "json_10000_rows_s": round(median_seconds(post_json, repeats), 3),
            "csv_10000_rows_s": round(median_seconds(post_csv, repeats), 3),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="covertype.csv (header row, label last)")
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--max-requests", type=int, default=3000, help="per concurrency level")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="per concurrency level")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    machine = describe_machine()
    data = pd.read_csv(args.data)
    features = data[list(FEATURE_NAMES)]
    batch = features.sample(n=10_000, replace=len(features) < 10_000, random_state=0).reset_index(drop=True)
    row = {name: str(value) for name, value in features.iloc[0].items()}
    mlflow_payload = {"dataframe_split": json.loads(features.iloc[:1].to_json(orient="split", index=False))}
    results: dict[str, Any] = {"machine": machine, "model": f"{args.trees}-tree random forest pipeline"}

    with tempfile.TemporaryDirectory(prefix="ancora-bench-serve-") as tmp:
        workdir = Path(tmp)
        with running_mlflow_server(workdir / "mlflow") as tracking_uri:
            logged = log_covertype_model(tracking_uri, data, n_estimators=args.trees, seed=0, n_jobs=1)
            register(tracking_uri, "covertype", logged, alias="champion")
            import mlflow
            import mlflow.sklearn

            mlflow.set_tracking_uri(tracking_uri)
            model = mlflow.sklearn.load_model("models:/covertype@champion")
            mlflow.set_tracking_uri(None)
            results["in_process"] = in_process(model, features, batch, seconds=5.0)
            print(json.dumps(results["in_process"]), flush=True)

            with mlflow_models_serve(tracking_uri, workdir) as url:
                results["mlflow_models_serve"] = load_levels(
                    f"{url}/invocations", mlflow_payload, args.max_requests, args.max_seconds
                )
            print(json.dumps(results["mlflow_models_serve"]), flush=True)

            with running_inference(workdir / "ancora", tracking_uri, poll_seconds=10) as url:
                wait_ready(url, timeout=300)
                results["ancora"] = load_levels(f"{url}/predict", row, args.max_requests, args.max_seconds)
                print(json.dumps(results["ancora"]), flush=True)
                results["ancora_batch"] = batch_through_ancora(url, batch, repeats=3)
                metrics = httpx.get(f"{url}/metrics").text
            results["ancora_predict_call_rows"] = _histogram_mean(metrics)
    results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    results["summary"] = summarize(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "serve.md").write_text(markdown(results))
    print(markdown(results))


def _histogram_mean(metrics: str) -> float | None:
    values = {}
    for line in metrics.splitlines():
        for key in ("ancora_inference_predict_call_rows_sum", "ancora_inference_predict_call_rows_count"):
            if line.startswith(key + " "):
                values[key] = float(line.split()[1])
    count = values.get("ancora_inference_predict_call_rows_count")
    return round(values["ancora_inference_predict_call_rows_sum"] / count, 1) if count else None


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    mlflow_32 = results["mlflow_models_serve"][-1]
    ancora_32 = results["ancora"][-1]
    limit = results["in_process"]["limit_rows_per_s_32_row_batches"]
    in_process_batch = results["in_process"]["predict_proba_10000_rows_s"]
    return {
        "req_per_s_ratio_at_32": round(ancora_32["req_per_s"] / mlflow_32["req_per_s"], 1),
        "p99_ratio_at_32": round(ancora_32["p99_ms"] / mlflow_32["p99_ms"], 3),
        "share_of_in_process_limit_at_32": round(ancora_32["req_per_s"] / limit, 2),
        "json_batch_overhead": round(results["ancora_batch"]["json_10000_rows_s"] / in_process_batch - 1, 3),
        "csv_batch_overhead": round(results["ancora_batch"]["csv_10000_rows_s"] / in_process_batch - 1, 3),
    }


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# Serving benchmark: `mlflow models serve` vs Ancora",
        "",
        f"{results['model']}, same registered version for both; loopback; {m['date']}.",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}; "
        f"load average {m['load_average_1m']:.2f} before, {m['load_average_after'][0]:.2f} after "
        "(the machine was shared with other work).",
        "",
        "| server | concurrency | req/s | p50 ms | p99 ms | requests | failures |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, key in (("mlflow models serve", "mlflow_models_serve"), ("Ancora", "ancora")):
        for level in results[key]:
            lines.append(
                f"| {name} | {level['concurrency']} | {level['req_per_s']} | {level['p50_ms']} | "
                f"{level['p99_ms']} | {level['requests']} | {level['failures']} |"
            )
    ip = results["in_process"]
    batch = results["ancora_batch"]
    s = results["summary"]
    lines += [
        "",
        "| in process (same cores) | value |",
        "|---|---:|",
        f"| predict_proba, 1 row | {ip['predict_proba_1_row_ms']} ms |",
        f"| predict_proba, 32 rows | {ip['predict_proba_32_rows_ms']} ms |",
        f"| limit, 32-row batches | {ip['limit_rows_per_s_32_row_batches']} rows/s |",
        f"| predict_proba, 10,000 rows | {ip['predict_proba_10000_rows_s']} s |",
        f"| Ancora /predict/batch, 10,000 rows JSON | {batch['json_10000_rows_s']} s |",
        f"| Ancora /predict/batch, 10,000 rows CSV | {batch['csv_10000_rows_s']} s |",
        f"| Ancora mean rows per predict call | {results['ancora_predict_call_rows']} |",
        "",
        f"At concurrency 32: {s['req_per_s_ratio_at_32']}x the req/s of `mlflow models serve` "
        "(target >= 20), "
        f"p99 {s['p99_ratio_at_32']} of its p99 (target <= 0.1), "
        f"{s['share_of_in_process_limit_at_32']} of the in-process limit (target >= 0.5). "
        f"Batch overhead over in-process: JSON {s['json_batch_overhead']:+.1%}, "
        f"CSV {s['csv_batch_overhead']:+.1%} (target <= +10%).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
