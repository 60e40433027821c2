"""
### remote_task

One run per job submitted to the task service (`POST /tasks`, the client library's
`Submitter.submit_task()`); the service triggers it with `conf={"task_id": ...}`. Clearing or marking
the `follow` task in this UI cancels the job (`scancel` on Slurm).

* **submit**: hands the stored task to its runner (`runner_location` → `ANCORA_REMOTE_LOCATIONS`):
  `hpc` copies the zips to the Slurm login node over SSH, writes the batch script and calls
  `sbatch --parsable`; `local` (admins only, where enabled) starts a process here, as the configured
  unprivileged account. Either way the job gets a minimal environment, none of this worker's
  (no Fernet key, no database URL). A retry never submits twice: a task that already has a job id is
  left alone, and one cancelled before it started is not submitted.
* **follow**: defers to `RemoteJobTrigger`, which polls `squeue`/`sacct` from the triggerer and
  records the state the client reads; at the end it keeps the log tail and the MLflow run id.
  COMPLETED succeeds, FAILED fails, CANCELLED is skipped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from ancora_remote.operators import RemoteJobOperator


@dag(
    dag_id="remote_task",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=32,
    tags=["ancora", "remote", "hpc"],
    doc_md=__doc__,
    params={"task_id": Param("", type="string", description="Task id from the task service.")},
    default_args={
        "owner": "ancora",
        "retries": 2,
        "retry_delay": timedelta(seconds=10),
        "retry_exponential_backoff": 2.0,
    },
)
def remote_task() -> None:
    @task
    def submit() -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from ancora.config import get_settings
        from ancora.remote.execution import Runners, start
        from ancora.remote.store import TaskStore

        context = get_current_context()
        task_id = str(context["params"]["task_id"])
        last_try = context["ti"].try_number > context["ti"].max_tries
        settings = get_settings()
        runners = Runners(settings)
        try:
            store = TaskStore.open(settings.remote_db_url)
            submitted = start(store, runners, task_id, record_failure=last_try)
        finally:
            runners.close()
        if submitted.job_id is None and submitted.status.value == "CANCELLED":
            raise AirflowSkipException(f"task {task_id} was cancelled before submission")
        if submitted.job_id is None:
            raise AirflowFailException(f"task {task_id} was not submitted: {submitted.detail}")
        return {"task_id": task_id, "job_id": submitted.job_id, "runner": submitted.runner_location}

    follow = RemoteJobOperator(task_id="follow", remote_task_id="{{ params.task_id }}")
    submit() >> follow


remote_task()
