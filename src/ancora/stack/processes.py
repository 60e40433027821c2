"""What Linux knows about a process, read from /proc.

Pid files alone cannot tell a live service from a recycled pid, and a process group misses task
processes that Airflow moves into their own groups; the start time and the session close both gaps.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    pgrp: int
    session: int
    state: str
    start_ticks: int
    """Start time in clock ticks since boot: a pid that was reused has another one."""

    @property
    def running(self) -> bool:
        return self.state not in ("Z", "X")


def process_info(pid: int) -> ProcessInfo | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name sits in parentheses and may itself contain spaces or parentheses.
    fields = stat[stat.rfind(")") + 2 :].split()
    return ProcessInfo(
        pid=pid,
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        session=int(fields[3]),
        state=fields[0],
        start_ticks=int(fields[19]),
    )


def all_processes() -> dict[int, ProcessInfo]:
    table = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (info := process_info(int(entry.name))) is not None:
            table[info.pid] = info
    return table


def is_running(pid: int, start_ticks: int | None = None) -> bool:
    info = process_info(pid)
    if info is None or not info.running:
        return False
    return start_ticks is None or info.start_ticks == start_ticks


def stack_processes(leaders: Iterable[int]) -> dict[int, ProcessInfo]:
    """Every live process started under the given session leaders: their sessions, their process
    groups, and any descendant that left both."""
    leader_ids = set(leaders)
    table = all_processes()
    members = {
        pid: info
        for pid, info in table.items()
        if info.running and (info.session in leader_ids or info.pgrp in leader_ids or pid in leader_ids)
    }
    grew = True
    while grew:
        grew = False
        for pid, info in table.items():
            if pid not in members and info.running and info.ppid in members:
                members[pid] = info
                grew = True
    return members


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages are split between the processes that map them, so the
    sum over a process tree is the memory the tree really costs."""
    try:
        rollup = (PROC / str(pid) / "smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    for line in rollup.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def reap(pid: int) -> None:
    """Collect a child that has exited so it stops counting as present (only matters in-process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
