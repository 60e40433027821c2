"""``TaskHandler``: follow, read the run id of, and cancel one submitted task."""

from __future__ import annotations

import requests

from ancora_client.connection import Server_connection, expect


class TaskHandler:
    """Calls on one task, by the ``id`` that ``submit_task()`` returned."""

    def __init__(self, task_id: str) -> None:
        self.task_id = str(task_id).strip()
        self.connection = Server_connection()

    def get_task_status(self) -> requests.Response:
        """JSON with ``status``: PENDING, RUNNING, COMPLETED, FAILED or CANCELLED."""
        return expect(self.connection.request("GET", f"/tasks/{self.task_id}"), 200)

    def get_task_run_id(self) -> requests.Response:
        """JSON with ``run_id``: the MLflow run, null until the job's log named it."""
        return expect(self.connection.request("GET", f"/tasks/{self.task_id}/run_id"), 200)

    def cancel_task(self) -> requests.Response:
        return expect(self.connection.request("POST", f"/tasks/{self.task_id}/cancel"), 200)

    def get_task_logs(self) -> requests.Response:
        """JSON with ``log``: the end of the job's output."""
        return expect(self.connection.request("GET", f"/tasks/{self.task_id}/logs"), 200)

    def get_job_status(self) -> requests.Response:
        """The name the usage examples call."""
        return self.get_task_status()

    def get_job_run_id(self) -> requests.Response:
        """The name the usage examples call."""
        return self.get_task_run_id()
