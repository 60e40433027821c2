"""A description of the machine a benchmark ran on, stored next to its results."""

from __future__ import annotations

import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def describe_machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        first = meminfo.read_text().splitlines()[0]
        memory_gib = round(int(first.split()[1]) / 1024 / 1024, 1)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1m": os.getloadavg()[0],
        "python_loop_seconds": python_loop_seconds(),
    }


def python_loop_seconds(iterations: int = 2_000_000) -> float:
    """Best of three timings of a plain Python loop: single-core speed, to compare runs across hosts.

    Two hosts with the same CPU name differ by twice in this; a figure measured on one is only
    comparable with another's when this is close.
    """
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for number in range(iterations):
            total += number
        best = min(best, time.perf_counter() - started)
    return round(best, 3)
