"""``RemoteJobTrigger``: polls a task's job from the triggerer until it ends.

For the ``hpc`` runner a poll is ``squeue`` (then ``sacct``) over SSH (paramiko, in
``ancora.remote.runners.hpc``), run in a thread because paramiko blocks; the runner keeps one SSH
connection for the trigger's lifetime. Each poll also records the state in the task store, so the
client sees RUNNING as soon as Slurm does; the job's end also closes the task's MLflow run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class RemoteJobTrigger(BaseTrigger):
    def __init__(self, task_id: str, poll_seconds: float = 2.0) -> None:
        super().__init__()
        self.task_id = task_id
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "ancora_remote.triggers.RemoteJobTrigger",
            {"task_id": self.task_id, "poll_seconds": self.poll_seconds},
        )

    def _context(self) -> tuple[Any, Any]:
        from ancora.config import get_settings
        from ancora.remote.execution import Runners
        from ancora.remote.store import TaskStore

        settings = get_settings()
        return TaskStore.open(settings.remote_db_url), Runners(settings)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from ancora.remote.execution import refresh

        store, runners = await asyncio.to_thread(self._context)
        failures = 0
        try:
            while True:
                try:
                    task = await asyncio.to_thread(refresh, store, runners, self.task_id)
                    failures = 0
                except Exception as problem:
                    failures += 1
                    self.log.warning("poll %d of task %s failed: %s", failures, self.task_id, problem)
                    if failures >= 5:
                        detail = str(problem)
                        yield TriggerEvent({"task_id": self.task_id, "status": "ERROR", "detail": detail})
                        return
                else:
                    if task.status.finished:
                        yield TriggerEvent(
                            {"task_id": self.task_id, "status": task.status.value, "detail": task.detail}
                        )
                        return
                await asyncio.sleep(self.poll_seconds)
        finally:
            await asyncio.to_thread(runners.close)

    async def on_kill(self) -> None:
        """The user marked or cleared the deferred task in the UI: stop the job too (``scancel``)."""
        from ancora.remote.execution import cancel

        store, runners = await asyncio.to_thread(self._context)
        try:
            await asyncio.to_thread(cancel, store, runners, self.task_id)
        finally:
            await asyncio.to_thread(runners.close)
