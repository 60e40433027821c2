"""Cold start and resting memory of the native stack, measured the way `make up` runs it.

Cold: an empty state folder, so the Airflow migration, MLflow's database set-up and every import
happen. The wall time runs from launching `python -m ancora stack up` until it returns, which it does
only when every service answers its health check. Memory is the PSS summed over every process of
the stack's sessions after it has rested, so pages shared between forked workers count once.

    .venv/bin/python -m benchmarks.stack_up [--rest-seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from ancora.stack.processes import pss_kib, stack_processes
from tests.support.native_stack import isolated_stack_env

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, object]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text()
    total = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE)
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(int(total.group(1)) / 1024**2, 1) if total else None,
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "apache_airflow": version("apache-airflow"),
        "mlflow": version("mlflow"),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }


def ancora(env: dict[str, str], cwd: Path, *args: str) -> tuple[float, str]:
    begin = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "ancora", *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    elapsed = time.monotonic() - begin
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"ancora {' '.join(args)} failed:\n{output}")
    return elapsed, output


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and of the children it has waited for."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def stack_cpu_seconds(run_dir: Path) -> float:
    leaders = [int(json.loads(path.read_text())["pid"]) for path in run_dir.glob("*.pid")]
    return sum(cpu_seconds(pid) for pid in stack_processes(leaders))


def resting_memory(run_dir: Path) -> tuple[dict[str, float], int]:
    leaders = {int(json.loads(path.read_text())["pid"]): path.stem for path in sorted(run_dir.glob("*.pid"))}
    processes = stack_processes(leaders)
    per_service: dict[str, float] = {}
    for pid, info in processes.items():
        name = leaders.get(info.session) or leaders.get(info.pgrp) or leaders.get(pid) or "other"
        per_service[name] = per_service.get(name, 0.0) + pss_kib(pid) / 1024
    return {name: round(mib, 1) for name, mib in sorted(per_service.items())}, len(processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rest-seconds", type=float, default=30.0, help="Idle time before reading PSS.")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ancora-bench-"))
    # Free ports for every service (inference and UI included) and no ANCORA_*/AIRFLOW* from the shell.
    env = isolated_stack_env(workdir / "state", {"ANCORA_STACK_START_TIMEOUT_SECONDS": "600"})
    run_dir = workdir / "state" / "run"
    described = machine()
    try:
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        cold, cold_output = ancora(env, workdir, "stack", "up")
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # The CLI and the migration it waited for, plus every service up to the moment all were healthy:
        # the work a cold start costs, whatever else the machine was doing meanwhile.
        cold_cpu = stack_cpu_seconds(run_dir) + sum(
            getattr(children_after, f) - getattr(children_before, f) for f in ("ru_utime", "ru_stime")
        )
        time.sleep(args.rest_seconds)
        pss, process_count = resting_memory(run_dir)
        down, _ = ancora(env, workdir, "stack", "down")
        warm, _ = ancora(env, workdir, "stack", "up")
    finally:
        ancora(env, workdir, "stack", "down")
        shutil.rmtree(workdir, ignore_errors=True)

    migrate = re.search(r"airflow-db-migrate took ([\d.]+) s", cold_output)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": described,
        "cold_up_seconds": round(cold, 1),
        "cold_up_cpu_seconds": round(cold_cpu, 1),
        "load_average_after_cold_up": [round(x, 2) for x in os.getloadavg()],
        "airflow_db_migrate_seconds": float(migrate.group(1)) if migrate else None,
        "warm_up_seconds": round(warm, 1),
        "down_seconds": round(down, 1),
        "rest_seconds": args.rest_seconds,
        "processes": process_count,
        "pss_mib_total": round(sum(pss.values()), 1),
        "pss_mib_per_service": pss,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stack_up.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "stack_up.md").write_text(markdown(result))
    print(json.dumps(result, indent=2))


def markdown(result: dict[str, object]) -> str:
    m = result["machine"]
    assert isinstance(m, dict)
    pss = result["pss_mib_per_service"]
    assert isinstance(pss, dict)
    rows = "\n".join(f"| {name} | {mib} |" for name, mib in pss.items())
    return f"""# Native stack: cold start and resting memory

Measured by `benchmarks/stack_up.py` on {result["date"]}.

Machine: {m["nproc"]} CPUs ({m["cpu_model"]}), {m["memory_gib"]} GiB RAM, Python {m["python"]},
kernel {m["kernel"]}, apache-airflow {m["apache_airflow"]}, mlflow {m["mlflow"]}.
Load average when the run began: {m["load_average_before"]}, after the cold start:
{result["load_average_after_cold_up"]}. Other work on the machine stretches the wall times; the CPU
time of the cold start does not depend on it: divided by the CPU count it bounds the wall time on an
idle machine from below.

| measure | value |
|---|---|
| cold `ancora stack up` (empty state) to all healthy | {result["cold_up_seconds"]} s |
| of which `airflow db migrate` | {result["airflow_db_migrate_seconds"]} s |
| CPU time of that cold start (CLI, migration, every service) | {result["cold_up_cpu_seconds"]} s |
| warm `ancora stack up` (state kept, migration a no-op) | {result["warm_up_seconds"]} s |
| `ancora stack down` | {result["down_seconds"]} s |
| processes at rest | {result["processes"]} |
| total PSS at rest (after {result["rest_seconds"]} s idle) | {result["pss_mib_total"]} MiB |

PSS per service (MiB):

| service | PSS MiB |
|---|---|
{rows}

Wall times include the `ancora` CLI's own start-up; PSS splits shared pages between the processes
mapping them, so the total is what the stack costs the machine.
"""


if __name__ == "__main__":
    main()
