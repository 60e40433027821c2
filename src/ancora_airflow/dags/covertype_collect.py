"""
### covertype_collect

Pulls one sample from the data API every five minutes and keeps what is new.

* **fetch**: `GET /data?group_number=N` (URL and group from `ANCORA_DATA_API_URL` and
  `ANCORA_GROUP_NUMBER`). Timeouts, refused connections, HTTP 5xx and unreadable bodies fail the
  attempt; the retry (exponential backoff) fetches again. The API's "all batches collected" 400 is the
  normal end of the data: the run succeeds and says so.
* **validate**: every row is checked against the covertype schema; bad rows go to quarantine with
  the reason and never stop the good rows.
* **store**: rows are written once per (group, batch, content hash), so an overlapping sample or a
  retried task never duplicates anything.
* **publish**: updates the Asset `ancora://raw/covertype` only when the run stored contents the
  group had never stored (the course's server repeats the same rows in every batch), which schedules
  `covertype_train`. It counts what the run stored, so a store attempt that committed and then died
  still gets its event from the retry.

Rows never travel through XCom: each task hands them on through the raw store's staging table, keyed
by the run (not the attempt), and the store task removes them in the transaction that stores the
rows. XCom carries counts only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Asset, dag, get_current_context, task

from ancora.airflow.notify import on_dag_failure
from ancora.assets import RAW_COVERTYPE_URI
from ancora.config import get_settings

raw_covertype = Asset(uri=RAW_COVERTYPE_URI, name="raw_covertype")


def _run_id() -> str:
    return str(get_current_context()["run_id"])


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

        from ancora.collection import DataApiRejected, fetch_to_staging
        from ancora.store import open_raw_store

        settings = get_settings()
        store = open_raw_store(settings.data_db_url)
        try:
            return fetch_to_staging(
                store,
                settings.data_api_url,
                settings.group_number,
                settings.data_api_timeout_seconds,
                _run_id(),
            )
        except DataApiRejected as problem:
            raise AirflowFailException(str(problem)) from problem

    @task
    def validate(fetched: dict[str, Any]) -> dict[str, Any]:
        from ancora.collection import validate_staged
        from ancora.store import open_raw_store

        return validate_staged(open_raw_store(get_settings().data_db_url), _run_id())

    @task
    def store(validated: dict[str, Any]) -> dict[str, Any]:
        from ancora.collection import store_staged
        from ancora.store import open_raw_store

        settings = get_settings()
        raw_store = open_raw_store(settings.data_db_url)
        return store_staged(raw_store, settings.group_number, _run_id()).to_dict()

    @task(outlets=[raw_covertype])
    def publish(result: dict[str, Any]) -> None:
        from airflow.sdk.exceptions import AirflowSkipException

        from ancora.collection import announcement

        extra, reason = announcement(result)
        if extra is None:
            raise AirflowSkipException(reason)
        get_current_context()["outlet_events"][raw_covertype].extra = extra

    publish(store(validate(fetch())))


covertype_collect()
