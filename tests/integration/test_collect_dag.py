"""covertype_collect run for real with dag.test(): simulator or scripted faults, store on MariaDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ancora.assets import RAW_COVERTYPE_URI
from ancora.config import get_settings
from ancora.store import open_raw_store
from tests.support.scripted_api import Scripted, scripted_api
from tests.support.simulator import running_simulator

ROW = ["2065", "97", "24", "242", "146", "268", "250", "198", "63", "552", "Cache", "C2702", "3"]


def run_collect_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from ancora.airflow_env import DAGS_FOLDER

    dag = DagBag(dag_folder=str(DAGS_FOLDER)).get_dag("covertype_collect")
    assert dag is not None
    return dag.test()


def task_states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def asset_events_of(run: Any) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.settings import Session

    with Session() as session:
        events = session.scalars(
            sa.select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == RAW_COVERTYPE_URI, AssetEvent.source_run_id == run.run_id)
        ).all()
        return [dict(event.extra) for event in events]


@pytest.fixture
def store_url(mariadb_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ANCORA_DATA_DB_URL", mariadb_url)
    monkeypatch.setenv("ANCORA_GROUP_NUMBER", "3")
    return mariadb_url


def use_api(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCORA_DATA_API_URL", url)
    get_settings.cache_clear()


@pytest.mark.usefixtures("airflow_db")
def test_a_run_stores_new_rows_and_announces_them(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_simulator(tmp_path / "sim", rotation_seconds=300) as url:
        use_api(url, monkeypatch)
        first = run_collect_dag()
        second = run_collect_dag()

    assert first.state == "success"
    assert task_states(first) == {
        "fetch": "success",
        "validate": "success",
        "store": "success",
        "publish": "success",
    }
    stats = open_raw_store(store_url).stats(group_number=3)
    assert stats.rows_per_batch.keys() == {1}
    first_events = asset_events_of(first)
    assert len(first_events) == 1
    assert first_events[0]["batch"] == 1
    inserted_first = first_events[0]["inserted"]
    assert inserted_first == 200
    assert second.state == "success"
    second_events = asset_events_of(second)
    inserted_second = second_events[0]["inserted"] if second_events else 0
    assert stats.total_rows == inserted_first + inserted_second < 400
    with open_raw_store(store_url).engine.connect() as connection:
        run_ids = set(connection.execute(sa.text("SELECT DISTINCT run_id FROM raw_rows")).scalars())
    assert first.run_id in run_ids


@pytest.mark.usefixtures("airflow_db")
def test_end_of_data_succeeds_without_an_asset_event(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with scripted_api() as api:
        api.answer(Scripted(400, {"detail": "Ya se recolectó toda la información minima necesaria"}))
        use_api(api.url, monkeypatch)
        run = run_collect_dag()
    assert run.state == "success"
    assert task_states(run)["publish"] == "skipped"
    assert asset_events_of(run) == []
    assert open_raw_store(store_url).stats().total_rows == 0


@pytest.mark.usefixtures("airflow_db")
def test_bad_rows_are_quarantined_and_good_rows_of_the_same_response_stored(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [ROW, [*ROW[:10], "Nowhere", *ROW[11:]], ["1", "2"], [*ROW[:1], "tall", *ROW[2:]]]
    with scripted_api() as api:
        api.answer(Scripted(body={"group_number": 3, "batch_number": 4, "data": rows}))
        use_api(api.url, monkeypatch)
        run = run_collect_dag()
    assert run.state == "success"
    stats = open_raw_store(store_url).stats()
    assert stats.rows_per_batch == {4: 1}
    assert stats.quarantined_per_batch == {4: 3}
    assert asset_events_of(run) == [{"group": 3, "batch": 4, "inserted": 1}]


@pytest.mark.usefixtures("airflow_db")
def test_a_server_error_fails_the_attempt_and_the_retry_stores_once(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"group_number": 3, "batch_number": 1, "data": [ROW]}
    with scripted_api() as api:
        api.answer(Scripted(500, text="upstream exploded"), Scripted(body=body))
        use_api(api.url, monkeypatch)
        run = run_collect_dag()
    assert run.state == "success"
    fetch_ti = next(ti for ti in run.get_task_instances() if ti.task_id == "fetch")
    assert fetch_ti.try_number == 2
    assert open_raw_store(store_url).stats().total_rows == 1
