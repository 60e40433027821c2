"""
### covertype_collect

Pulls one sample of the current batch from the data API every five minutes and keeps what is new.

* **fetch**: `GET /data?group_number=N` (URL and group from `ANCORA_DATA_API_URL` and
  `ANCORA_GROUP_NUMBER`). Timeouts, refused connections, HTTP 5xx and unreadable bodies fail the
  attempt; the retry (exponential backoff) fetches again. The API's "all batches collected" 400 is the
  normal end of the data: the run succeeds and says so.
* **validate**: every row is checked against the covertype schema; bad rows go to quarantine with
  the reason and never stop the good rows.
* **store**: rows are written once per (group, batch, content hash), so an overlapping sample or a
  retried task never duplicates anything.
* **publish**: updates the Asset `ancora://raw/covertype` only when new rows were stored, which
  schedules `covertype_train`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Asset, dag, get_current_context, task

from ancora.assets import RAW_COVERTYPE_URI
from ancora.config import get_settings
from ancora.monitoring.notify import on_dag_failure

raw_covertype = Asset(uri=RAW_COVERTYPE_URI, name="raw_covertype")


@dag(
    dag_id="covertype_collect",
    schedule=get_settings().collect_schedule,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=4),
    tags=["ancora", "collection", "covertype"],
    doc_md=__doc__,
    on_failure_callback=on_dag_failure,
    default_args={
        "owner": "ancora",
        "retries": 3,
        "retry_delay": timedelta(seconds=15),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=2),
    },
)
def covertype_collect() -> None:
    @task
    def fetch() -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from ancora.collection import DataApiRejected, fetch_batch

        settings = get_settings()
        try:
            fetched = fetch_batch(
                settings.data_api_url, settings.group_number, settings.data_api_timeout_seconds
            )
        except DataApiRejected as problem:
            raise AirflowFailException(str(problem)) from problem
        return fetched.to_dict()

    @task
    def validate(fetched: dict[str, Any]) -> dict[str, Any]:
        from ancora.collection import FetchedBatch, report_to_dict, validate_batch

        return report_to_dict(validate_batch(FetchedBatch.from_dict(fetched)))

    @task
    def store(fetched: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
        from ancora.collection import FetchedBatch, report_from_dict, store_batch
        from ancora.store import open_raw_store

        run_id = str(get_current_context()["run_id"])
        raw_store = open_raw_store(get_settings().resolved_data_db_url)
        result = store_batch(raw_store, FetchedBatch.from_dict(fetched), report_from_dict(report), run_id)
        return result.to_dict()

    @task(outlets=[raw_covertype])
    def publish(result: dict[str, Any]) -> None:
        from airflow.sdk.exceptions import AirflowSkipException

        if result["exhausted"]:
            raise AirflowSkipException("all batches of the group are collected; nothing new to announce")
        if result["inserted"] == 0:
            raise AirflowSkipException(f"batch {result['batch']}: no new rows, no Asset event")
        get_current_context()["outlet_events"][raw_covertype].extra = {
            "group": result["group"],
            "batch": result["batch"],
            "inserted": result["inserted"],
        }

    fetched = fetch()
    publish(store(fetched, validate(fetched)))


covertype_collect()
