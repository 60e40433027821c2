"""The five states a client sees, and how Slurm's many job states map onto them.

Clients script against five words; Slurm has about twenty. The mapping lives here once, so the
runner, the trigger, the service and the documentation (docs/remote.md) agree.
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})

SLURM_STATES: dict[str, TaskStatus] = {
    "PENDING": TaskStatus.PENDING,
    "CONFIGURING": TaskStatus.PENDING,
    "REQUEUED": TaskStatus.PENDING,
    "REQUEUE_FED": TaskStatus.PENDING,
    "REQUEUE_HOLD": TaskStatus.PENDING,
    "RESV_DEL_HOLD": TaskStatus.PENDING,
    "SPECIAL_EXIT": TaskStatus.PENDING,
    "SUSPENDED": TaskStatus.PENDING,
    "STOPPED": TaskStatus.PENDING,
    "RUNNING": TaskStatus.RUNNING,
    "COMPLETING": TaskStatus.RUNNING,
    "RESIZING": TaskStatus.RUNNING,
    "SIGNALING": TaskStatus.RUNNING,
    "STAGE_OUT": TaskStatus.RUNNING,
    "COMPLETED": TaskStatus.COMPLETED,
    "CANCELLED": TaskStatus.CANCELLED,
    "REVOKED": TaskStatus.CANCELLED,
    "DEADLINE": TaskStatus.FAILED,
    "FAILED": TaskStatus.FAILED,
    "BOOT_FAIL": TaskStatus.FAILED,
    "NODE_FAIL": TaskStatus.FAILED,
    "OUT_OF_MEMORY": TaskStatus.FAILED,
    "PREEMPTED": TaskStatus.FAILED,
    "TIMEOUT": TaskStatus.FAILED,
}
"""Slurm job state (squeue %T, scontrol JobState, sacct State) to the client's status."""


def from_slurm(state: str) -> TaskStatus:
    """Map a Slurm state; ``CANCELLED by 0`` (sacct) and ``CANCELLED+`` are cancellations too.

    An unknown state counts as RUNNING: the job exists and has not said it ended, so the follower
    keeps polling rather than declaring an outcome it cannot know.
    """
    word = state.strip().split()[0].rstrip("+").upper() if state.strip() else ""
    return SLURM_STATES.get(word, TaskStatus.RUNNING)
