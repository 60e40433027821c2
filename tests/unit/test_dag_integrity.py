"""Every DAG in ancora_airflow/dags/ imports cleanly and carries what operators rely on in the Airflow UI."""

from __future__ import annotations

from typing import Any

import pytest

from ancora.locations import dags_folder


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(dags_folder()))


def test_every_dag_file_imports(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert "covertype_collect" in dagbag.dag_ids


def test_every_dag_has_owner_retries_tags_and_docs(dagbag: Any) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 80, f"{dag_id} has no doc_md"
        assert dag.catchup is False, f"{dag_id} would backfill"
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), f"{dag_id}.{task.task_id} has no owner"
            assert task.retries >= 1, f"{dag_id}.{task.task_id} never retries"


def test_collect_runs_every_five_minutes_one_at_a_time(dagbag: Any) -> None:
    dag = dagbag.dags["covertype_collect"]
    assert dag.max_active_runs == 1
    assert dag.schedule == "*/5 * * * *"
    publish = dag.get_task("publish")
    assert [outlet.uri for outlet in publish.outlets] == ["ancora://raw/covertype"]
    fetch = dag.get_task("fetch")
    assert fetch.retry_exponential_backoff > 1
