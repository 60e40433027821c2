"""Serving throughput and latency: `mlflow models serve` against Ancora's inference API.

One run on one machine, loopback only, bounded loops. A 200-tree random forest pipeline is trained on
the covertype sample, logged and registered as ``covertype@champion`` in a temporary MLflow server
(SQLite, ``--serve-artifacts``). The same version is then served by

- ``mlflow models serve -m models:/covertype@champion --env-manager local`` with its defaults, and
- ``python -m ancora serve`` (micro-batching, prediction in a worker process, serving n_jobs=1),

one after the other, and each is driven with single-row requests at concurrency 1, 8 and 32 by
``benchmarks.loadgen`` (a lean keep-alive HTTP/1.1 client on uvloop, in its own process, a few
hundredths of a millisecond of CPU per request, reported; bounded by a request count and a time
limit). Ancora also answers a 10,000-row batch (JSON and CSV), compared with an in-process
``predict_proba`` of the same rows. The in-process limit is ``predict_proba`` on 32-row batches in
this process, on the same cores, with nothing else of the benchmark running.

Besides wall-clock figures it records CPU time (of each server's processes, the client, and an
in-process call), which a shared machine disturbs far less: the load average is written next to each
level, and figures taken above about 3 on 2 cores are noisy.

    uv run --frozen python -m benchmarks.serve                 # about 4-5 minutes on a quiet machine
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
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

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_DATA = ROOT / "data" / "covertype" / "covertype.csv"
CONCURRENCY = (1, 8, 32)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def median_seconds(action: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        action()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def median_cpu_seconds(action: Callable[[], Any], repeats: int) -> float:
    """The median thread CPU time of ``repeats`` calls, which other work on the machine disturbs far
    less than the wall clock."""
    times = []
    for _ in range(repeats):
        begin = time.thread_time()
        action()
        times.append(time.thread_time() - begin)
    return statistics.median(times)


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU time of ``root`` and its descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    members = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in members and pid not in members:
                members.add(pid)
                grew = True
    return sum(times.get(pid, 0.0) for pid in members)


def pid_listening_on(port: int) -> int | None:
    """The process that owns the listening socket on ``port`` (to account the server's CPU time)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(fields[9])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if str(fd.readlink()).removeprefix("socket:[").removesuffix("]") in inodes:
                    return int(entry.name)
        except OSError:
            continue
    return None


def drive(url: str, body: bytes, concurrency: int, max_requests: int, max_seconds: float, server: int) -> Any:
    """One level of load from a separate client process; adds the server's CPU time per request."""
    with tempfile.NamedTemporaryFile(suffix=".json") as payload:
        payload.write(body)
        payload.flush()
        argv = [
            sys.executable, "-m", "benchmarks.loadgen", "--url", url, "--body", payload.name,
            "-c", str(concurrency), "-n", str(max_requests), "-t", str(max_seconds),
        ]  # fmt: skip
        load_before = load_average()
        cpu_before = tree_cpu_seconds(server)
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=max_seconds + 120)
        cpu_after = tree_cpu_seconds(server)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    sent = result["requests"] + concurrency
    result["server_cpu_ms_per_request"] = round((cpu_after - cpu_before) * 1000 / sent, 3)
    result["load_average_start"] = load_before
    result["load_average_end"] = result.pop("load_average")[0]
    print(json.dumps(result), flush=True)
    return result


def load_levels(url: str, body: bytes, max_requests: int, max_seconds: float, server: int) -> list[Any]:
    return [drive(url, body, c, max_requests, max_seconds, server) for c in CONCURRENCY]


def in_process(model: Any, frame: pd.DataFrame, batch: pd.DataFrame, seconds: float) -> dict[str, Any]:
    one = frame.iloc[:1]
    thirty_two = frame.iloc[:32]
    load_before = load_average()
    single = median_seconds(lambda: model.predict_proba(one), 30)
    small = median_seconds(lambda: model.predict_proba(thirty_two), 30)
    calls = 0
    begin = time.perf_counter()
    while time.perf_counter() - begin < seconds:
        model.predict_proba(thirty_two)
        calls += 1
    limit = calls * 32 / (time.perf_counter() - begin)
    large = median_seconds(lambda: model.predict_proba(batch), 5)
    return {
        "predict_proba_1_row_ms": round(single * 1000, 1),
        "predict_proba_32_rows_ms": round(small * 1000, 1),
        "limit_rows_per_s_32_row_batches": round(limit, 1),
        "predict_proba_10000_rows_s": round(large, 3),
        "cpu_predict_proba_1_row_ms": round(
            median_cpu_seconds(lambda: model.predict_proba(one), 30) * 1000, 1
        ),
        "cpu_predict_proba_32_rows_ms": round(
            median_cpu_seconds(lambda: model.predict_proba(thirty_two), 30) * 1000, 1
        ),
        "cpu_predict_proba_10000_rows_s": round(median_cpu_seconds(lambda: model.predict_proba(batch), 5), 3),
        "load_average_start": load_before,
        "load_average_end": load_average(),
    }


@contextmanager
def mlflow_models_serve(tracking_uri: str, workdir: Path) -> Iterator[tuple[str, int]]:
    """`mlflow models serve` with its defaults, as the MLflow docs start it; yields its URL and pid."""
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
        yield url, process.pid
    finally:
        stop_process(process)


def batch_through_ancora(url: str, batch: pd.DataFrame, repeats: int, server: int) -> dict[str, Any]:
    """10,000 rows per request, the whole answer read; wall time and the server's CPU time."""
    records = batch.astype(str).to_dict("records")
    bodies = {
        "json": (json.dumps(records).encode(), "application/json"),
        "csv": (batch.to_csv(index=False).encode(), "text/csv"),
    }
    result: dict[str, Any] = {"load_average_start": load_average()}
    with httpx.Client(base_url=url, timeout=300) as client:
        for name, (body, media_type) in bodies.items():

            def post(body: bytes = body, media_type: str = media_type) -> None:
                response = client.post("/predict/batch", content=body, headers={"content-type": media_type})
                response.raise_for_status()

            post()
            walls, cpus = [], []
            for _ in range(repeats):
                cpu_before = tree_cpu_seconds(server)
                walls.append(median_seconds(post, 1))
                cpus.append(tree_cpu_seconds(server) - cpu_before)
            result[f"{name}_10000_rows_s"] = round(statistics.median(walls), 3)
            result[f"{name}_server_cpu_s"] = round(statistics.median(cpus), 3)
    result["load_average_end"] = load_average()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="covertype.csv (header row, label last)"
    )
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--max-requests", type=int, default=3000, help="per concurrency level")
    parser.add_argument("--max-seconds", type=float, default=15.0, help="per concurrency level")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    started = time.monotonic()
    machine = describe_machine()
    data = pd.read_csv(args.data)
    features = data[list(FEATURE_NAMES)]
    batch = features.sample(n=10_000, replace=len(features) < 10_000, random_state=0).reset_index(drop=True)
    row = json.dumps({name: str(value) for name, value in features.iloc[0].items()}).encode()
    split = json.loads(features.iloc[:1].to_json(orient="split", index=False))
    mlflow_payload = json.dumps({"dataframe_split": split}).encode()
    results: dict[str, Any] = {
        "machine": machine,
        "model": f"{args.trees}-tree random forest pipeline",
        "client": "benchmarks.loadgen (keep-alive HTTP/1.1 on uvloop, separate process)",
    }

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
            del model
            print(json.dumps(results["in_process"]), flush=True)

            with mlflow_models_serve(tracking_uri, workdir) as (url, server):
                results["mlflow_models_serve"] = load_levels(
                    f"{url}/invocations", mlflow_payload, args.max_requests, args.max_seconds, server
                )

            with running_inference(workdir / "ancora", tracking_uri, poll_seconds=10) as url:
                wait_ready(url, timeout=300)
                server = pid_listening_on(int(url.rsplit(":", 1)[1]))
                assert server is not None, "cannot find the ancora serve process"
                results["ancora"] = load_levels(
                    f"{url}/predict", row, args.max_requests, args.max_seconds, server
                )
                results["ancora_batch"] = batch_through_ancora(url, batch, repeats=5, server=server)
                print(json.dumps(results["ancora_batch"]), flush=True)
                metrics = httpx.get(f"{url}/metrics").text
            results["ancora_predict_call_rows"] = _call_rows(metrics)
    results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds"] = round(time.monotonic() - started)
    results["summary"] = summarize(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "serve.md").write_text(markdown(results))
    print(markdown(results))


def _call_rows(metrics: str) -> dict[str, float]:
    """Rows per predict call from the histogram: all calls, and those of single-row requests."""
    buckets = {}
    values = {}
    for line in metrics.splitlines():
        if line.startswith("ancora_inference_predict_call_rows_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[bound] = float(line.rsplit(" ", 1)[1])
        for key in ("sum", "count"):
            if line.startswith(f"ancora_inference_predict_call_rows_{key} "):
                values[key] = float(line.split()[1])
    count = values.get("count", 0.0)
    return {
        "calls": count,
        "mean_rows": round(values.get("sum", 0.0) / count, 1) if count else 0.0,
        "calls_of_at_most_256_rows": buckets.get("256.0", 0.0),
    }


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    mlflow_32 = results["mlflow_models_serve"][-1]
    ancora_32 = results["ancora"][-1]
    in_process = results["in_process"]
    limit = in_process["limit_rows_per_s_32_row_batches"]
    batch = results["ancora_batch"]
    cpu_batch = in_process["cpu_predict_proba_10000_rows_s"]
    return {
        "req_per_s_ratio_at_32": round(ancora_32["req_per_s"] / mlflow_32["req_per_s"], 1),
        "p99_ratio_at_32": round(ancora_32["p99_ms"] / mlflow_32["p99_ms"], 3),
        "share_of_in_process_limit_at_32": round(ancora_32["req_per_s"] / limit, 2),
        "json_batch_overhead": round(
            batch["json_10000_rows_s"] / in_process["predict_proba_10000_rows_s"] - 1, 3
        ),
        "csv_batch_overhead": round(
            batch["csv_10000_rows_s"] / in_process["predict_proba_10000_rows_s"] - 1, 3
        ),
        "json_batch_cpu_overhead": round(batch["json_server_cpu_s"] / cpu_batch - 1, 3),
        "csv_batch_cpu_overhead": round(batch["csv_server_cpu_s"] / cpu_batch - 1, 3),
        "server_cpu_ms_per_request_at_32": {
            "mlflow_models_serve": mlflow_32["server_cpu_ms_per_request"],
            "ancora": ancora_32["server_cpu_ms_per_request"],
        },
    }


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# Serving benchmark: `mlflow models serve` vs Ancora",
        "",
        f"{results['model']}, same registered version for both; loopback; {m['date']}; "
        f"{results['seconds']} s in all. Client: {results['client']}.",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}; "
        f"load average {m['load_average_1m']:.2f} before, {m['load_average_after'][0]:.2f} after "
        "(above about 3 on 2 cores, other work shared the cores and wall-clock figures are noisy; "
        "CPU-time figures much less so).",
        "",
        "| server | concurrency | req/s | p50 ms | p99 ms | requests | failures | server CPU ms/req "
        "| client CPU ms/req | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, key in (("mlflow models serve", "mlflow_models_serve"), ("Ancora", "ancora")):
        for level in results[key]:
            lines.append(
                f"| {name} | {level['concurrency']} | {level['req_per_s']} | {level['p50_ms']} | "
                f"{level['p99_ms']} | {level['requests']} | {level['failures']} | "
                f"{level['server_cpu_ms_per_request']} | {level['client_cpu_ms_per_request']} | "
                f"{level['load_average_start']} → {level['load_average_end']} |"
            )
    ip = results["in_process"]
    batch = results["ancora_batch"]
    calls = results["ancora_predict_call_rows"]
    s = results["summary"]
    lines += [
        "",
        "| in process (same cores) | wall | CPU |",
        "|---|---:|---:|",
        f"| predict_proba, 1 row | {ip['predict_proba_1_row_ms']} ms "
        f"| {ip['cpu_predict_proba_1_row_ms']} ms |",
        f"| predict_proba, 32 rows | {ip['predict_proba_32_rows_ms']} ms "
        f"| {ip['cpu_predict_proba_32_rows_ms']} ms |",
        f"| limit, 32-row batches | {ip['limit_rows_per_s_32_row_batches']} rows/s | |",
        f"| predict_proba, 10,000 rows | {ip['predict_proba_10000_rows_s']} s "
        f"| {ip['cpu_predict_proba_10000_rows_s']} s |",
        f"| Ancora /predict/batch, 10,000 rows JSON | {batch['json_10000_rows_s']} s "
        f"| {batch['json_server_cpu_s']} s (server) |",
        f"| Ancora /predict/batch, 10,000 rows CSV | {batch['csv_10000_rows_s']} s "
        f"| {batch['csv_server_cpu_s']} s (server) |",
        f"| Ancora mean rows per predict call (all levels and batches) | {calls['mean_rows']} | |",
        "",
        f"In-process load average {ip['load_average_start']} → {ip['load_average_end']}; batches "
        f"{batch['load_average_start']} → {batch['load_average_end']}.",
        "",
        f"At concurrency 32: {s['req_per_s_ratio_at_32']}x the req/s of `mlflow models serve` "
        "(target >= 20), "
        f"p99 {s['p99_ratio_at_32']} of its p99 (target <= 0.1), "
        f"{s['share_of_in_process_limit_at_32']} of the in-process limit (target >= 0.5). "
        f"Batch overhead over in-process, wall clock: JSON {s['json_batch_overhead']:+.1%}, "
        f"CSV {s['csv_batch_overhead']:+.1%} (target <= +10%); in CPU time: JSON "
        f"{s['json_batch_cpu_overhead']:+.1%}, CSV {s['csv_batch_cpu_overhead']:+.1%}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
