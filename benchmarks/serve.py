"""Serving throughput and latency: `mlflow models serve`, Ancora on scikit-learn, Ancora compiled.

One run on one machine, loopback only, bounded loops. The training code's random forest pipeline
(scaled numbers, one-hot categories, 100 trees of depth 24 by default) is fitted on 16,000 covertype
rows, logged, compiled to ONNX Runtime by the registration step's own code (parity checked on the
other 4,000 rows, crossover measured) and registered as ``covertype@champion`` in a temporary MLflow
server (SQLite, ``--serve-artifacts``). The same version is then served by

- ``mlflow models serve -m models:/covertype@champion --env-manager local`` with its defaults,
- ``python -m ancora serve`` with ``ANCORA_SERVING_COMPILED=false`` (scikit-learn answers every call:
  the service as it was before compilation), and
- ``python -m ancora serve`` as configured by default (the compiled engine below the crossover),

one after the other, and each is driven with single-row requests at concurrency 1, 8 and 32 by
``benchmarks.loadgen`` (a lean keep-alive HTTP/1.1 client on uvloop, in its own process, a few
hundredths of a millisecond of CPU per request, reported; bounded by a request count and a time
limit). Both Ancora configurations also answer a 10,000-row batch (JSON and CSV), compared with an
in-process ``predict_proba`` of the same rows. The in-process limit is ``predict_proba`` on 32-row batches in
this process, on the same cores, with nothing else of the benchmark running.

Besides wall-clock figures it records CPU time (of each server's processes, the client, and an
in-process call), which a shared machine disturbs far less: the load average is written next to each
level, and figures taken above about 3 on 2 cores are noisy.

    uv run --frozen python -m benchmarks.serve                 # about 6-8 minutes on a quiet machine
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

from ancora.locations import COVERTYPE_CSV, shipped_dataset
from ancora.schema import FEATURE_NAMES
from ancora_inference.heap import SETTLE_SECONDS as HEAP_SETTLE_SECONDS
from benchmarks.machine import describe_machine
from tests.support.inference import LoggedModel, register, running_inference, wait_ready
from tests.support.mlflow_server import running_mlflow_server, stop_process
from tests.support.simulator import free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_DATA = shipped_dataset(COVERTYPE_CSV)
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


def in_process(
    predict: Callable[[pd.DataFrame], Any], frame: pd.DataFrame, batch: pd.DataFrame, seconds: float
) -> dict[str, Any]:
    """One engine's calls in this process, as serving makes them: 1, 32 and 10,000 rows."""
    one = frame.iloc[:1]
    thirty_two = frame.iloc[:32]
    load_before = load_average()
    single = median_seconds(lambda: predict(one), 30)
    small = median_seconds(lambda: predict(thirty_two), 30)
    calls = 0
    begin = time.perf_counter()
    while time.perf_counter() - begin < seconds:
        predict(thirty_two)
        calls += 1
    limit = calls * 32 / (time.perf_counter() - begin)
    large = median_seconds(lambda: predict(batch), 5)
    return {
        "predict_proba_1_row_ms": round(single * 1000, 3),
        "predict_proba_32_rows_ms": round(small * 1000, 3),
        "limit_rows_per_s_32_row_batches": round(limit, 1),
        "predict_proba_10000_rows_s": round(large, 3),
        "cpu_predict_proba_1_row_ms": round(median_cpu_seconds(lambda: predict(one), 30) * 1000, 3),
        "cpu_predict_proba_32_rows_ms": round(median_cpu_seconds(lambda: predict(thirty_two), 30) * 1000, 3),
        "cpu_predict_proba_10000_rows_s": round(median_cpu_seconds(lambda: predict(batch), 5), 3),
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


def register_compiled_forest(
    tracking_uri: str, data: pd.DataFrame, trees: int, depth: int
) -> tuple[Any, Any, dict[str, Any]]:
    """Fit, log, compile (the registration step's code) and register ``covertype@champion``."""
    import mlflow

    from ancora.schema import LABEL_NAME
    from ancora.training.compile import compile_pipeline, log_compiled
    from ancora.training.pipelines import build_pipeline, for_serving
    from ancora.training.tracking import input_example, log_pipeline

    params = {"n_estimators": trees, "max_depth": depth, "min_samples_leaf": 1, "max_features": "sqrt"}
    train, evaluation = data.iloc[:16_000], data.iloc[16_000:]
    pipeline = for_serving(build_pipeline("random_forest", params, seed=0))
    pipeline.fit(train[list(FEATURE_NAMES)], train[LABEL_NAME])
    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow.set_experiment("bench-serve")
        with mlflow.start_run() as run:
            info = log_pipeline(pipeline, input_example(train[list(FEATURE_NAMES)]), params)
            compiled = compile_pipeline(pipeline, evaluation[list(FEATURE_NAMES)])
            log_compiled(mlflow.MlflowClient(), info.model_uri, compiled)
    finally:
        mlflow.set_tracking_uri(None)
    logged = LoggedModel(model_uri=info.model_uri, run_id=run.info.run_id)
    register(tracking_uri, "covertype", logged, alias="champion")
    report = compiled.report.as_dict()
    summary = {
        key: report[key]
        for key in ("status", "reason", "method", "compile_seconds", "parity", "crossover_rows")
    }
    summary["timings"] = report["timings"]
    return pipeline, compiled, summary


def serve_ancora(
    workdir: Path,
    tracking_uri: str,
    row: bytes,
    batch: pd.DataFrame,
    args: argparse.Namespace,
    extra: dict[str, str],
) -> tuple[list[Any], dict[str, Any], dict[str, float], dict[str, Any]]:
    with running_inference(workdir, tracking_uri, poll_seconds=10, extra_env=extra) as url:
        wait_ready(url, timeout=300)
        time.sleep(HEAP_SETTLE_SECONDS + 1)  # the heap pass after the first load (~150 ms) is not measured
        server = pid_listening_on(int(url.rsplit(":", 1)[1]))
        assert server is not None, "cannot find the ancora serve process"
        engine = httpx.get(f"{url}/models").json()["engine"]
        levels = load_levels(f"{url}/predict", row, args.max_requests, args.max_seconds, server)
        batches = batch_through_ancora(url, batch, repeats=5, server=server)
        print(json.dumps(batches), flush=True)
        metrics = httpx.get(f"{url}/metrics").text
    return levels, batches, _call_rows(metrics), engine


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="covertype.csv (header row, label last)"
    )
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--depth", type=int, default=24)
    parser.add_argument("--max-requests", type=int, default=30000, help="per concurrency level")
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
        "model": f"random forest pipeline of the training code ({args.trees} trees, max_depth {args.depth}, "
        "one-hot categories)",
        "client": "benchmarks.loadgen (keep-alive HTTP/1.1 on uvloop, separate process)",
    }

    with tempfile.TemporaryDirectory(prefix="ancora-bench-serve-") as tmp:
        workdir = Path(tmp)
        with running_mlflow_server(workdir / "mlflow") as tracking_uri:
            pipeline, compiled, results["compile"] = register_compiled_forest(
                tracking_uri, data, args.trees, args.depth
            )
            print(json.dumps({k: v for k, v in results["compile"].items() if k != "timings"}), flush=True)
            from ancora.serving.engines import CompiledPipeline, frame_columns

            onnx_engine = CompiledPipeline(compiled.onnx_bytes, compiled.report)
            results["in_process"] = in_process(pipeline.predict_proba, features, batch, seconds=5.0)
            results["in_process_compiled"] = in_process(
                lambda frame: onnx_engine.predict_proba(frame_columns(frame)),
                features,
                batch,
                seconds=5.0,
            )
            del pipeline
            print(json.dumps(results["in_process"]), json.dumps(results["in_process_compiled"]), flush=True)

            with mlflow_models_serve(tracking_uri, workdir) as (url, server):
                results["mlflow_models_serve"] = load_levels(
                    f"{url}/invocations", mlflow_payload, args.max_requests, args.max_seconds, server
                )
            for key, extra in (
                ("ancora_sklearn", {"ANCORA_SERVING_COMPILED": "false"}),
                ("ancora_compiled", {}),
            ):
                levels, batches, calls, engine_status = serve_ancora(
                    workdir / key, tracking_uri, row, batch, args, extra
                )
                results[key] = {
                    "levels": levels,
                    "batch": batches,
                    "predict_call_rows": calls,
                    "engine": engine_status,
                }
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
    mlflow_levels = {level["concurrency"]: level for level in results["mlflow_models_serve"]}
    sklearn = {level["concurrency"]: level for level in results["ancora_sklearn"]["levels"]}
    compiled = {level["concurrency"]: level for level in results["ancora_compiled"]["levels"]}
    sklearn_batch = results["ancora_sklearn"]["batch"]
    compiled_batch = results["ancora_compiled"]["batch"]
    return {
        "compiled_vs_sklearn_req_per_s_at_32": round(compiled[32]["req_per_s"] / sklearn[32]["req_per_s"], 2),
        "compiled_vs_mlflow_req_per_s_at_32": round(
            compiled[32]["req_per_s"] / mlflow_levels[32]["req_per_s"], 1
        ),
        "sklearn_vs_mlflow_req_per_s_at_32": round(
            sklearn[32]["req_per_s"] / mlflow_levels[32]["req_per_s"], 1
        ),
        "compiled_p99_ms_at_32": compiled[32]["p99_ms"],
        "compiled_p50_ms_at_1": compiled[1]["p50_ms"],
        "batch_10000_json_compiled_vs_sklearn": round(
            compiled_batch["json_10000_rows_s"] / sklearn_batch["json_10000_rows_s"], 3
        ),
        "batch_10000_csv_compiled_vs_sklearn": round(
            compiled_batch["csv_10000_rows_s"] / sklearn_batch["csv_10000_rows_s"], 3
        ),
        "targets": {
            "compiled_vs_sklearn_at_32": ">= 3",
            "compiled_vs_mlflow_at_32": ">= 100",
            "compiled_p99_ms_at_32": "<= 15",
            "compiled_p50_ms_at_1": "<= 3",
            "batch_10000_compiled_vs_sklearn": "<= 1 (no slower)",
        },
    }


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    compile_ = results["compile"]
    parity = compile_["parity"]
    lines = [
        "# Serving benchmark: `mlflow models serve`, Ancora on scikit-learn, Ancora compiled",
        "",
        f"{results['model']}, the same registered version for all three; loopback; {m['date']}; "
        f"{results['seconds']} s in all. Client: {results['client']}.",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}; "
        f"load average {m['load_average_1m']:.2f} before, {m['load_average_after'][0]:.2f} after "
        "(above about 3 on 2 cores, other work shared the cores and wall-clock figures are noisy; "
        "CPU-time figures much less so).",
        "",
        f"Compiled at registration in {compile_['compile_seconds']:.1f} s ({compile_['method']}); parity on "
        f"{parity['rows']} rows: labels {parity['label_agreement']:.4%}, probabilities within "
        f"{parity['max_probability_diff']:.1e}; crossover: {compile_['crossover_rows'] or 'none'} rows.",
        "",
        "| server | concurrency | req/s | p50 ms | p99 ms | requests | failures | server CPU ms/req "
        "| client CPU ms/req | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    servers = (
        ("mlflow models serve", results["mlflow_models_serve"]),
        ("Ancora, scikit-learn", results["ancora_sklearn"]["levels"]),
        ("Ancora, compiled", results["ancora_compiled"]["levels"]),
    )
    for name, levels in servers:
        for level in levels:
            lines.append(
                f"| {name} | {level['concurrency']} | {level['req_per_s']} | {level['p50_ms']} | "
                f"{level['p99_ms']} | {level['requests']} | {level['failures']} | "
                f"{level['server_cpu_ms_per_request']} | {level['client_cpu_ms_per_request']} | "
                f"{level['load_average_start']} → {level['load_average_end']} |"
            )
    sk, onnx = results["in_process"], results["in_process_compiled"]
    sk_batch, onnx_batch = results["ancora_sklearn"]["batch"], results["ancora_compiled"]["batch"]
    lines += [
        "",
        "| in process (same cores), wall (CPU) | scikit-learn | ONNX Runtime |",
        "|---|---:|---:|",
        f"| predict_proba, 1 row | {sk['predict_proba_1_row_ms']} ms "
        f"({sk['cpu_predict_proba_1_row_ms']}) "
        f"| {onnx['predict_proba_1_row_ms']} ms ({onnx['cpu_predict_proba_1_row_ms']}) |",
        f"| predict_proba, 32 rows | {sk['predict_proba_32_rows_ms']} ms "
        f"({sk['cpu_predict_proba_32_rows_ms']}) "
        f"| {onnx['predict_proba_32_rows_ms']} ms ({onnx['cpu_predict_proba_32_rows_ms']}) |",
        f"| limit, 32-row batches | {sk['limit_rows_per_s_32_row_batches']} rows/s "
        f"| {onnx['limit_rows_per_s_32_row_batches']} rows/s |",
        f"| predict_proba, 10,000 rows | {sk['predict_proba_10000_rows_s']} s "
        f"({sk['cpu_predict_proba_10000_rows_s']}) | {onnx['predict_proba_10000_rows_s']} s "
        f"({onnx['cpu_predict_proba_10000_rows_s']}) |",
        "",
        "| Ancora /predict/batch, 10,000 rows, wall (server CPU) | scikit-learn serving | compiled serving |",
        "|---|---:|---:|",
        f"| JSON | {sk_batch['json_10000_rows_s']} s ({sk_batch['json_server_cpu_s']}) "
        f"| {onnx_batch['json_10000_rows_s']} s ({onnx_batch['json_server_cpu_s']}) |",
        f"| CSV | {sk_batch['csv_10000_rows_s']} s ({sk_batch['csv_server_cpu_s']}) "
        f"| {onnx_batch['csv_10000_rows_s']} s ({onnx_batch['csv_server_cpu_s']}) |",
        "| mean rows per predict call (all levels and batches) "
        f"| {results['ancora_sklearn']['predict_call_rows']['mean_rows']} "
        f"| {results['ancora_compiled']['predict_call_rows']['mean_rows']} |",
        "",
    ]
    s = results["summary"]
    lines += [
        "At concurrency 32 compiled serving answers "
        f"{s['compiled_vs_sklearn_req_per_s_at_32']}x the req/s of "
        f"scikit-learn serving (target >= 3) and {s['compiled_vs_mlflow_req_per_s_at_32']}x those of "
        f"`mlflow models serve` (target >= 100), p99 {s['compiled_p99_ms_at_32']} ms (target <= 15). "
        f"Concurrency 1: p50 {s['compiled_p50_ms_at_1']} ms (target <= 3). The 10,000-row batch takes "
        f"{s['batch_10000_json_compiled_vs_sklearn']} (JSON) and {s['batch_10000_csv_compiled_vs_sklearn']} "
        "(CSV) of the scikit-learn serving time (target <= 1).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
