"""covertype_collect run for real with dag.test(): simulator or scripted faults, store on MariaDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ancora.assets import RAW_COVERTYPE_URI
from ancora.config import get_settings
from ancora.store import RawRowStore, open_raw_store
from ancora.store.tables import collection_staging
from tests.support.scripted_api import Scripted, scripted_api
from tests.support.simulator import running_simulator

ROW = ["2065", "97", "24", "242", "146", "268", "250", "198", "63", "552", "Cache", "C2702", "3"]


def run_collect_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from ancora.locations import dags_folder

    dag = DagBag(dag_folder=str(dags_folder())).get_dag("covertype_collect")
    assert dag is not None
    return dag.test()


def task_states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def xcom_values(run: Any) -> dict[str, Any]:
    return {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in run.get_task_instances()}


def staged_rows(store_url: str) -> int:
    query = sa.select(sa.func.count()).select_from(collection_staging)
    with open_raw_store(store_url).engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


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
    assert asset_events_of(run) == [{"group": 3, "batch": 4, "inserted": 1, "new_contents": 1}]


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


@pytest.mark.usefixtures("airflow_db")
def test_rows_travel_through_the_store_not_xcom(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_simulator(tmp_path / "sim", rotation_seconds=300) as url:
        use_api(url, monkeypatch)
        run = run_collect_dag()
    assert run.state == "success"
    values = xcom_values(run)
    assert values["fetch"] == {"group": 3, "batch": 1, "received": 200, "exhausted": False, "detail": ""}
    assert values["validate"] == {"group": 3, "batch": 1, "valid": 200, "quarantined": 0, "exhausted": False}
    assert values["store"]["inserted"] == values["store"]["run_inserted"] == 200
    assert values["publish"] is None
    assert max(len(repr(value)) for value in values.values()) < 500, "counts only, never rows"
    assert staged_rows(store_url) == 0, "the store task removed the run's staged rows"


@pytest.mark.usefixtures("airflow_db")
def test_a_store_attempt_that_commits_then_dies_still_gets_its_asset_event(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #15: the retry sees only duplicates, so it must publish from what the run stored."""
    real = RawRowStore.store_response
    attempts: list[int] = []

    def commit_then_die(self: RawRowStore, **kwargs: Any) -> Any:
        written = real(self, **kwargs)
        attempts.append(written.inserted)
        if len(attempts) == 1:
            raise ConnectionError("worker lost after the commit")
        return written

    monkeypatch.setattr(RawRowStore, "store_response", commit_then_die)
    body = {"group_number": 3, "batch_number": 2, "data": [ROW, [str(2066), *ROW[1:]]]}
    with scripted_api() as api:
        api.answer(Scripted(body=body))
        use_api(api.url, monkeypatch)
        run = run_collect_dag()

    assert run.state == "success"
    store_ti = next(ti for ti in run.get_task_instances() if ti.task_id == "store")
    assert store_ti.try_number == 2
    assert attempts == [2], "the retry found the rows stored and the staging gone: it wrote nothing"
    result = store_ti.xcom_pull(task_ids="store")
    assert (result["inserted"], result["run_inserted"], result["run_new_contents"]) == (0, 2, 2)
    assert task_states(run)["publish"] == "success"
    assert asset_events_of(run) == [{"group": 3, "batch": 2, "inserted": 2, "new_contents": 2}]
    assert open_raw_store(store_url).stats().total_rows == 2
    assert staged_rows(store_url) == 0


@pytest.mark.usefixtures("airflow_db")
def test_a_batch_that_only_repeats_stored_contents_announces_nothing(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference server's next batch: new (batch, content) keys, but no content the group lacks."""
    with scripted_api() as api:
        use_api(api.url, monkeypatch)
        api.answer(Scripted(body={"group_number": 3, "batch_number": 1, "data": [ROW]}))
        first = run_collect_dag()
        api.answer(Scripted(body={"group_number": 3, "batch_number": 2, "data": [ROW]}))
        repeated = run_collect_dag()

    assert asset_events_of(first) == [{"group": 3, "batch": 1, "inserted": 1, "new_contents": 1}]
    assert repeated.state == "success"
    assert task_states(repeated)["publish"] == "skipped"
    assert asset_events_of(repeated) == []
    stats = open_raw_store(store_url).stats(group_number=3)
    assert stats.rows_per_batch == {1: 1, 2: 1}
    assert stats.distinct_contents == 1
