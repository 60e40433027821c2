"""Configurations of `ancora serve` side by side on the compiled forest: which change moved the tail.

The serve benchmark's forest (100 trees, depth 24) is fitted, compiled and registered once; then each
variant, a name and environment variables for `python -m ancora serve`, is started in turn and driven
with single-row ``/predict`` requests by ``benchmarks.loadgen`` (concurrency 32 by default). Rounds
alternate the order, so a load change on a shared machine hits every variant. Compare code versions
with a worktree on ``PYTHONPATH``: ``git worktree add /tmp/before <sha>`` then
``--variant before=PYTHONPATH=/tmp/before/src``.

    uv run --frozen python -m benchmarks.serve_variants \\
        --variant log-on= --variant log-off=ANCORA_PREDICTION_LOG_ENABLED=false --rounds 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from ancora.schema import FEATURE_NAMES
from ancora_inference.heap import SETTLE_SECONDS as HEAP_SETTLE_SECONDS
from benchmarks.machine import describe_machine
from benchmarks.serve import (
    DEFAULT_DATA,
    RESULTS,
    drive,
    load_average,
    pid_listening_on,
    register_compiled_forest,
)
from tests.support.inference import running_inference, wait_ready
from tests.support.mlflow_server import running_mlflow_server


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``name=VAR=value,VAR=value`` (``name=`` for the defaults)."""
    name, _, assignments = text.partition("=")
    if not name:
        raise argparse.ArgumentTypeError(f"a variant needs a name: {text!r}")
    env = {}
    for assignment in filter(None, assignments.split(",")):
        variable, equals, value = assignment.partition("=")
        if not equals:
            raise argparse.ArgumentTypeError(f"not VAR=value: {assignment!r} in {text!r}")
        env[variable] = value
    return name, env


def one_variant(
    workdir: Path, tracking_uri: str, body: bytes, env: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    with running_inference(workdir, tracking_uri, poll_seconds=10, extra_env=env) as url:
        wait_ready(url, timeout=300)
        time.sleep(HEAP_SETTLE_SECONDS + 1)  # the heap pass after the first load is not measured
        server = pid_listening_on(int(url.rsplit(":", 1)[1]))
        assert server is not None, "cannot find the ancora serve process"
        result: dict[str, Any] = drive(
            f"{url}/predict", body, args.concurrency, args.max_requests, args.max_seconds, server
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", type=parse_variant, action="append", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--max-requests", type=int, default=30000)
    parser.add_argument("--max-seconds", type=float, default=15.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    data = pd.read_csv(DEFAULT_DATA)
    body = json.dumps(
        {name: str(value) for name, value in data[list(FEATURE_NAMES)].iloc[0].items()}
    ).encode()
    results: dict[str, Any] = {"machine": describe_machine(), "concurrency": args.concurrency, "runs": []}
    with tempfile.TemporaryDirectory(prefix="ancora-bench-variants-") as tmp:
        workdir = Path(tmp)
        with running_mlflow_server(workdir / "mlflow") as tracking_uri:
            register_compiled_forest(tracking_uri, data, trees=100, depth=24)
            for round_number in range(args.rounds):
                order = args.variant if round_number % 2 == 0 else list(reversed(args.variant))
                for name, env in order:
                    run = one_variant(workdir / f"{name}-{round_number}", tracking_uri, body, env, args)
                    run.update(variant=name, env=env, round=round_number)
                    results["runs"].append(run)
                    print(json.dumps(run), flush=True)
    results["machine"]["load_average_after"] = load_average()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_variants.json").write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"| variant | round | req/s | p50 ms | p99 ms | server CPU ms/req | load avg |  (concurrency "
        f"{results['concurrency']})",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for run in results["runs"]:
        lines.append(
            f"| {run['variant']} | {run['round']} | {run['req_per_s']} | {run['p50_ms']} | {run['p99_ms']} | "
            f"{run['server_cpu_ms_per_request']} | {run['load_average_start']} → {run['load_average_end']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
