"""``RemoteJobOperator``: waits for a submitted task's job without holding a worker slot.

It defers to ``RemoteJobTrigger`` and, once the job ended, turns the outcome into the task's state:
COMPLETED succeeds, FAILED fails (the job's log tail is in the task log), CANCELLED is skipped.
Killed while running on a worker (not deferred), it cancels the job (``scancel`` on Slurm).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from ancora_remote.triggers import RemoteJobTrigger


class RemoteJobOperator(BaseOperator):
    template_fields: Sequence[str] = ("remote_task_id",)

    def __init__(self, *, remote_task_id: str, poll_seconds: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.remote_task_id = remote_task_id
        self.poll_seconds = poll_seconds

    def _store(self) -> Any:
        from ancora.config import get_settings
        from ancora.remote.store import TaskStore

        return TaskStore.open(get_settings().remote_db_url)

    def execute(self, context: Any) -> dict[str, Any]:
        from ancora.config import get_settings

        task = self._store().get(self.remote_task_id)
        if task.status.finished:
            return self._outcome(task)
        poll = self.poll_seconds or get_settings().remote_poll_seconds
        self.defer(
            trigger=RemoteJobTrigger(task_id=self.remote_task_id, poll_seconds=poll),
            method_name="execute_complete",
        )
        raise AssertionError("defer() does not return")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException

        if event.get("status") == "ERROR":
            raise AirflowException(f"the job's state could not be read: {event.get('detail')}")
        return self._outcome(self._store().get(self.remote_task_id))

    def _outcome(self, task: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        summary = {"status": task.status.value, "job_id": task.job_id, "run_id": task.mlflow_run_id}
        if task.log_tail:
            self.log.info("end of the job's log:\n%s", task.log_tail[-4000:])
        if task.status.value == "FAILED":
            raise AirflowFailException(f"job {task.job_id} failed: {task.detail}")
        if task.status.value == "CANCELLED":
            raise AirflowSkipException(f"job {task.job_id} was cancelled: {task.detail}")
        return summary

    def on_kill(self) -> None:
        from ancora.config import get_settings
        from ancora.remote.execution import Runners, cancel

        runners = Runners(get_settings())
        try:
            cancel(self._store(), runners, self.remote_task_id)
        finally:
            runners.close()
