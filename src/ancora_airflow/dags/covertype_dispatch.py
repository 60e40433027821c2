"""
### covertype_dispatch

Scores every datalake row that awaits a prediction with the current champion, on a schedule
(`ANCORA_DISPATCH_SCHEDULE`, hourly by default) or when triggered by hand with the params below.

* **dispatch**: runs `ancora.dispatch.run.run_dispatch`, the same code as `ancora dispatch`. It reads
  the rows of `ANCORA_DATALAKE_TABLE` whose prediction column is NULL (and marker column too) in
  batches, checks them against the data contract, predicts the valid ones with `covertype@champion`
  loaded by the inference service's serving core, and writes each batch back in one transaction,
  guarded so a rerun writes nothing twice. Invalid rows are reported one by one and skipped.
* **Events**: every dispatch, its events (`started`, `collected`, `predicted`, `persisted`,
  `finished` or `failed` with the reason) and each row's prediction go to the dispatch events
  database; the inference API serves them at `GET /dispatches` and the UI's Dispatches page shows them.
* **A young stack**: while no model holds the `champion` alias yet the task ends *skipped* with the
  reason, and no dispatch is recorded: there is nothing to score with, and nothing is wrong.
* **Failures**: a datalake or registry that is down fails the attempt, and the retry starts a new
  dispatch that picks up what still awaits a prediction; settings that cannot work fail at once
  without retries.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from ancora.airflow.notify import on_dag_failure
from ancora.config import get_settings

settings = get_settings()


@dag(
    dag_id="covertype_dispatch",
    schedule=settings.dispatch_schedule,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=3),
    tags=["ancora", "dispatch", "covertype"],
    doc_md=__doc__,
    on_failure_callback=on_dag_failure,
    params={
        "max_rows": Param(
            0, type="integer", minimum=0, description="Score at most this many rows (0: every awaiting row)."
        ),
        "batch_rows": Param(
            settings.dispatch_batch_rows,
            type="integer",
            minimum=1,
            maximum=100_000,
            description="Rows read, scored and written back per transaction.",
        ),
    },
    default_args={
        "owner": "ancora",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
    },
)
def covertype_dispatch() -> None:
    @task(execution_timeout=timedelta(hours=2))
    def dispatch() -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from ancora.dispatch.run import run_dispatch
        from ancora.monitoring.first_run import champion_missing_reason

        context = get_current_context()
        params = context["params"]
        waiting = champion_missing_reason(get_settings())
        if waiting is not None:
            raise AirflowSkipException(waiting)
        summary = run_dispatch(
            get_settings(),
            dag_run_id=str(context["run_id"]),
            max_rows=int(params["max_rows"]) or None,
            batch_rows=int(params["batch_rows"]),
        )
        if summary.failure == "no_champion":
            raise AirflowSkipException(f"dispatch {summary.id}: {summary.error}")
        if summary.state == "failed":
            message = f"dispatch {summary.id} failed: {summary.error}"
            if summary.retryable:
                raise RuntimeError(message)
            raise AirflowFailException(message)
        return summary.as_dict()

    dispatch()


covertype_dispatch()
