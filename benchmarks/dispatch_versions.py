"""Dispatch throughput of code versions side by side: which version is faster on the same host, now.

Hosts of this kind change speed from one hour to the next (the same code measured 18,126 and
15,103 rows/s on MariaDB six hours apart), so two versions are only compared in one run that
alternates them. Each version is a source tree (``git worktree add /tmp/before <sha>``); a child
process per version imports Ancora from its tree, fits and registers the dispatch benchmark's forest
(``benchmarks.dispatch.log_champion`` of that tree) in its own MLflow server and seeds its own
100,000-row table. Then the children take turns, one dispatch at a time while the others wait, the
order reversed every round; a child reseeds its table before handing the turn back.

    git worktree add /tmp/e91ff66 e91ff66
    uv run --frozen python -m benchmarks.dispatch_versions \\
        --version e91ff66=/tmp/e91ff66 --version current=. --rounds 5
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
from typing import IO, Any

RESULTS = Path(__file__).resolve().parent / "results"
SERVER_URL = os.environ.get("ANCORA_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")


def child(datalake: str, rows: int) -> None:
    """One version: set up, say ``ready``, then one dispatch per ``go`` read from stdin."""
    import pandas as pd
    import sqlalchemy as sa

    from ancora.config import Settings
    from ancora.dispatch.datalake import open_datalake
    from ancora.dispatch.run import load_champion, run_dispatch
    from ancora.dispatch.seed import SHIPPED_SAMPLE, seed_datalake
    from benchmarks.dispatch import database_server_cpu_seconds, log_champion, process_cpu_seconds
    from tests.support.mlflow_server import running_mlflow_server

    # The throwaway database is made here rather than by tests.support.databases.throwaway_mariadb:
    # this child imports from the version's tree, which may predate that helper (e91ff66 does).
    server = sa.create_engine(SERVER_URL)
    database = f"ancora_bench_versions_{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="ancora-bench-versions-") as tmp:
        workdir = Path(tmp)
        with running_mlflow_server(workdir / "mlflow") as tracking_uri:
            log_champion(tracking_uri, pd.read_csv(SHIPPED_SAMPLE))
            if datalake == "mariadb":
                with server.connect() as connection:
                    connection.execute(sa.text(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4"))
                url = f"{SERVER_URL}/{database}?charset=utf8mb4"
            else:
                url = f"sqlite:///{workdir / 'lake.db'}"
            try:
                settings = Settings(
                    state_dir=workdir / "state",
                    mlflow_tracking_uri=tracking_uri,
                    registry_timeout_seconds=30,
                    datalake_url=url,
                    dispatch_events_db_url=f"sqlite:///{workdir / 'events.db'}",
                )
                lake = open_datalake(settings)
                load_champion(settings)  # the first download is not measured

                def seed() -> None:
                    seed_datalake(lake, rows, SHIPPED_SAMPLE, replace=True, seed=0)

                seed()
                print("ready", flush=True)
                for line in sys.stdin:
                    if line.strip() != "go":
                        break
                    cpu, server_cpu = process_cpu_seconds(), database_server_cpu_seconds()
                    started = time.perf_counter()
                    summary = run_dispatch(settings)
                    seconds = time.perf_counter() - started
                    result = {
                        "state": summary.state,
                        "rows_written": summary.counters.rows_written,
                        "seconds": round(seconds, 3),
                        "rows_per_s": round(rows / seconds),
                        "without_model_load_s": round(summary.seconds - summary.model_load_seconds, 3),
                        "cpu_seconds": {
                            "dispatch_process": round(process_cpu_seconds() - cpu, 2),
                            "database_server": round(database_server_cpu_seconds() - server_cpu, 2),
                        },
                    }
                    seed()
                    print(json.dumps(result), flush=True)
            finally:
                if datalake == "mariadb":
                    with server.connect() as connection:
                        connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{database}`"))


def describe_tree(tree: Path) -> str:
    """The tree's commit, and whether it holds changes not committed (what the run measured)."""

    def git(*args: str) -> str:
        command = ["git", "-C", str(tree), *args]
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "not a git tree"
    return commit + (" + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def start(name: str, tree: Path, datalake: str, rows: int) -> subprocess.Popen[str]:
    tree = tree.resolve()
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}"}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", datalake, "--rows", str(rows)]
    return subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def read_line(name: str, stream: IO[str] | None) -> str:
    assert stream is not None
    for line in stream:
        if line.startswith(("ready", "{")):
            return line
    raise RuntimeError(f"version {name} ended before answering")


def compare(versions: list[tuple[str, Path]], datalake: str, rows: int, rounds: int) -> dict[str, Any]:
    children = {name: start(name, tree, datalake, rows) for name, tree in versions}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in versions}
    try:
        for name, process in children.items():
            read_line(name, process.stdout)
        names = [name for name, _ in versions]
        for number in range(rounds):
            for name in names if number % 2 == 0 else names[::-1]:
                process = children[name]
                assert process.stdin is not None
                process.stdin.write("go\n")
                process.stdin.flush()
                result = json.loads(read_line(name, process.stdout))
                result["round"] = number
                result["load_average_1m"] = round(os.getloadavg()[0], 2)
                runs[name].append(result)
                print(datalake, name, json.dumps(result), flush=True)
    finally:
        for process in children.values():
            if process.stdin is not None:
                process.stdin.close()
        for process in children.values():
            process.wait(timeout=120)
    summary = {
        name: {
            "median_rows_per_s": round(statistics.median(run["rows_per_s"] for run in results)),
            "median_cpu_seconds": {
                kind: round(statistics.median(run["cpu_seconds"][kind] for run in results), 2)
                for kind in ("dispatch_process", "database_server")
            },
            "all_succeeded": all(
                run["state"] == "succeeded" and run["rows_written"] == rows for run in results
            ),
        }
        for name, results in runs.items()
    }
    first = versions[0][0]
    for name in summary:
        summary[name]["vs_" + first] = round(
            summary[name]["median_rows_per_s"] / summary[first]["median_rows_per_s"], 2
        )
    return {"summary": summary, "runs": runs}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        rows = int(sys.argv[sys.argv.index("--rows") + 1])
        child(sys.argv[2], rows)
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="append", required=True, help="name=path of a source tree")
    parser.add_argument("--datalake", action="append", choices=["mariadb", "sqlite"])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "dispatch_versions.json")
    args = parser.parse_args()
    versions = []
    for text in args.version:
        name, _, path = text.partition("=")
        if not name or not (Path(path) / "src" / "ancora").is_dir():
            parser.error(f"--version {text!r}: want name=path of a tree with src/ancora")
        versions.append((name, Path(path)))

    from benchmarks.machine import describe_machine

    machine = describe_machine()
    results: dict[str, Any] = {
        "machine": machine,
        "rows": args.rows,
        "versions": {name: describe_tree(path) for name, path in versions},
        "method": "one child process per version, alternating one dispatch at a time, order reversed "
        "every round; each reseeds its own table before handing the turn back",
    }
    for datalake in args.datalake or ["mariadb", "sqlite"]:
        results[datalake] = compare(versions, datalake, args.rows, args.rounds)
    machine["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(
        json.dumps(
            {key: results[key]["summary"] for key in ("mariadb", "sqlite") if key in results}, indent=2
        )
    )


if __name__ == "__main__":
    main()
