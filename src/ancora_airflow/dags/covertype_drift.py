"""
### covertype_drift_batch and covertype_drift_served

Compare what the champion meets with what it was trained on, feature by feature and class mix.

* **covertype_drift_batch** runs whenever `covertype_collect` stores new rows (the Asset
  `ancora://raw/covertype`) and compares that batch's validated rows, and the champion's predicted
  classes on them, with the champion's training rows.
* **covertype_drift_served** runs on `ANCORA_DRIFT_SERVED_SCHEDULE` (hourly) and compares the
  predictions logged in the last `ANCORA_DRIFT_WINDOW_HOURS` with the same reference.
* Each report (per-feature scores, the class mix) goes to the events database (the Monitor page
  plots it) and, as HTML and JSON, to the champion's training run in MLflow under `drift/`.
* A report over its threshold raises an alert (SMTP and webhook, once per report) and, with
  `ANCORA_DRIFT_RETRAIN=true`, triggers `covertype_train`.
* **A young stack**: no champion yet, or too few rows, end the run *skipped* with the reason. A
  registry that is down fails and is retried.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, dag, get_current_context, task

from ancora.airflow.notify import on_dag_failure
from ancora.assets import RAW_COVERTYPE_URI
from ancora.config import get_settings

settings = get_settings()

DEFAULT_ARGS = {
    "owner": "ancora",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}


def _report_summary(report: Any) -> dict[str, Any]:
    from ancora.airflow.notify import alert
    from ancora.monitoring.alerts import drift_alert
    from ancora.monitoring.drift import report_dict

    if report.breached:
        alert(drift_alert(report))
    return {**report_dict(report), "retrain": bool(report.breached and get_settings().drift_retrain)}


def _asset_batch() -> int | None:
    """The batch number the triggering Asset event announced, when there is one."""
    events = get_current_context().get("triggering_asset_events") or {}
    for asset_events in events.values():
        for event in reversed(list(asset_events)):
            batch = (getattr(event, "extra", None) or {}).get("batch")
            if isinstance(batch, int):
                return batch
    return None


@task.short_circuit(ignore_downstream_trigger_rules=False)
def breached_and_retrain(summary: dict[str, Any]) -> bool:
    return bool(summary["retrain"])


def retrain() -> TriggerDagRunOperator:
    return TriggerDagRunOperator(
        task_id="trigger_training", trigger_dag_id="covertype_train", wait_for_completion=False
    )


@dag(
    dag_id="covertype_drift_batch",
    schedule=[Asset(uri=RAW_COVERTYPE_URI, name="raw_covertype")],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    tags=["ancora", "monitoring", "drift", "covertype"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    on_failure_callback=on_dag_failure,
)
def covertype_drift_batch() -> None:
    @task(execution_timeout=timedelta(minutes=20))
    def compare_batch() -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from ancora.monitoring.drift_runs import NothingToCompare, batch_drift

        try:
            report = batch_drift(get_settings(), _asset_batch())
        except NothingToCompare as reason:
            raise AirflowSkipException(str(reason)) from reason
        return _report_summary(report)

    breached_and_retrain(compare_batch()) >> retrain()


@dag(
    dag_id="covertype_drift_served",
    schedule=settings.drift_served_schedule,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    tags=["ancora", "monitoring", "drift", "covertype"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    on_failure_callback=on_dag_failure,
)
def covertype_drift_served() -> None:
    @task(execution_timeout=timedelta(minutes=20))
    def compare_served() -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from ancora.monitoring.drift_runs import NothingToCompare, served_drift

        context = get_current_context()
        end = context.get("data_interval_end") or datetime.now(UTC)
        try:
            report = served_drift(get_settings(), end)
        except NothingToCompare as reason:
            raise AirflowSkipException(str(reason)) from reason
        return _report_summary(report)

    breached_and_retrain(compare_served()) >> retrain()


covertype_drift_batch()
covertype_drift_served()
