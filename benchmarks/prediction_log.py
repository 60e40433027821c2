"""Cost of the prediction log: req/s at concurrency 32 on the serve benchmark's setup, log on and off.

The same registered 200-tree forest is served by ``python -m ancora serve`` twice per round, once
with ``ANCORA_PREDICTION_LOG_ENABLED=false`` and once with the log writing every row to the events
database (SQLite, as natively), and ``benchmarks.loadgen`` drives single-row ``/predict`` requests at
concurrency 32. Rounds alternate the order, so a load change on a shared machine hits both sides;
the server's CPU time per request is reported too, as it is far less disturbed by neighbours.
Target (issue #17): the log costs at most 5% of req/s. Also checks that nothing below the queue
bound was dropped (``/metrics``).

    uv run --frozen python -m benchmarks.prediction_log          # about 3 minutes
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from ancora.schema import FEATURE_NAMES
from benchmarks.machine import describe_machine
from benchmarks.serve import DEFAULT_DATA, RESULTS, drive, pid_listening_on
from tests.support.inference import log_covertype_model, register, running_inference, wait_ready
from tests.support.mlflow_server import running_mlflow_server


def one_side(
    workdir: Path, tracking_uri: str, body: bytes, log: bool, args: argparse.Namespace
) -> dict[str, Any]:
    env = {"ANCORA_PREDICTION_LOG_ENABLED": "true" if log else "false"}
    with running_inference(workdir, tracking_uri, poll_seconds=10, extra_env=env) as url:
        wait_ready(url, timeout=300)
        server = pid_listening_on(int(url.rsplit(":", 1)[1]))
        assert server is not None
        drive(f"{url}/predict", body, 32, 300, 3.0, server)  # warm-up
        result = drive(f"{url}/predict", body, 32, args.max_requests, args.max_seconds, server)
        time.sleep(2.0)
        metrics = httpx.get(f"{url}/metrics").text
    counts = {
        line.split('outcome="', 1)[1].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("ancora_inference_prediction_log_rows_total{")
    }
    return {**result, "log": log, "log_rows": counts}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-requests", type=int, default=20000)
    parser.add_argument("--max-seconds", type=float, default=15.0)
    args = parser.parse_args()
    data = pd.read_csv(DEFAULT_DATA)
    body = json.dumps(
        {name: str(value) for name, value in data[list(FEATURE_NAMES)].iloc[0].items()}
    ).encode()
    sides: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ancora-bench-log-") as tmp:
        workdir = Path(tmp)
        with running_mlflow_server(workdir / "mlflow") as tracking_uri:
            logged = log_covertype_model(tracking_uri, data, n_estimators=args.trees, seed=0, n_jobs=1)
            register(tracking_uri, "covertype", logged, alias="champion")
            for number in range(args.rounds):
                order = (False, True) if number % 2 == 0 else (True, False)
                for log in order:
                    sides.append(one_side(workdir / f"serve-{number}-{log}", tracking_uri, body, log, args))
    off = [s["req_per_s"] for s in sides if not s["log"]]
    on = [s["req_per_s"] for s in sides if s["log"]]
    cpu_off = [s["server_cpu_ms_per_request"] for s in sides if not s["log"]]
    cpu_on = [s["server_cpu_ms_per_request"] for s in sides if s["log"]]
    result = {
        "machine": describe_machine(),
        "concurrency": 32,
        "sides": sides,
        "requests_per_second_log_off": round(statistics.median(off), 1),
        "requests_per_second_log_on": round(statistics.median(on), 1),
        "throughput_cost_percent": round(100 * (1 - statistics.median(on) / statistics.median(off)), 1),
        "server_cpu_ms_per_request_off": round(statistics.median(cpu_off), 3),
        "server_cpu_ms_per_request_on": round(statistics.median(cpu_on), 3),
        "dropped_rows_with_log_on": sum(
            s["log_rows"].get("dropped_queue_full", 0) + s["log_rows"].get("dropped_write_error", 0)
            for s in sides
            if s["log"]
        ),
        "target_percent": 5.0,
    }
    (RESULTS / "prediction_log.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "sides"}, indent=2))


if __name__ == "__main__":
    main()
