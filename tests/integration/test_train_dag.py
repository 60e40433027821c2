"""covertype_train run for real with dag.test(), and its Asset link from covertype_collect."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from mlflow import MlflowClient

from ancora.assets import RAW_COVERTYPE_URI
from ancora.config import Settings, get_settings
from ancora.store import open_raw_store
from tests.support.simulator import free_port, running_simulator
from tests.support.training_data import read_csv_rows, store_rows

pytestmark = pytest.mark.usefixtures("airflow_db")


def load_dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from ancora.locations import dags_folder

    bag = DagBag(dag_folder=str(dags_folder()))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def train_instance(run: Any) -> Any:
    (instance,) = [ti for ti in run.get_task_instances() if ti.task_id == "train"]
    return instance


def fill(settings: Settings, covertype_csv: Path, count: int) -> None:
    store_rows(open_raw_store(settings.data_db_url), read_csv_rows(covertype_csv, limit=count), batches=2)


def test_train_dag_is_scheduled_by_the_collection_asset_and_takes_params() -> None:
    dag = load_dag("covertype_train")
    assert [asset.uri for asset in dag.timetable.asset_condition.objects] == [RAW_COVERTYPE_URI]
    assert dag.max_active_runs == 1
    assert set(dag.params) == {"families", "search_budget"}
    task = dag.get_task("train")
    assert task.retries >= 1 and task.retry_exponential_backoff > 1


def test_a_triggered_run_registers_a_champion(training_settings: Settings, covertype_csv: Path) -> None:
    fill(training_settings, covertype_csv, 1500)
    run = load_dag("covertype_train").test(run_conf={"families": ["logistic_regression"], "search_budget": 1})
    assert run.state == "success"
    assert train_instance(run).xcom_pull(task_ids="train")["version"] == "1"
    client = MlflowClient(training_settings.mlflow_tracking_uri)
    model = client.get_registered_model(training_settings.registered_model_name)
    assert dict(model.aliases) == {"champion": "1", "challenger": "1"}
    versions = client.search_model_versions(f"name = '{training_settings.registered_model_name}'")
    assert versions[0].tags["families"] == "logistic_regression"


def test_too_little_data_is_a_state_the_run_ends_skipped_with_the_reason(
    training_settings: Settings, covertype_csv: Path
) -> None:
    from ancora.training.data import TrainingDataError
    from ancora.training.run import TrainingRequest, train_and_register

    fill(training_settings, covertype_csv, 100)
    run = load_dag("covertype_train").test()
    assert run.state == "success", "a young stack is not a failed run"
    instance = train_instance(run)
    assert (str(instance.state), instance.try_number) == ("skipped", 1)
    refusal = f"only 100 distinct validated rows .* at least {training_settings.train_min_rows}"
    with pytest.raises(TrainingDataError, match=refusal):
        train_and_register(training_settings, TrainingRequest.from_settings(training_settings))
    client = MlflowClient(training_settings.mlflow_tracking_uri)
    assert client.search_registered_models(f"name = '{training_settings.registered_model_name}'") == []


def test_mlflow_down_fails_the_attempt_and_is_retried(
    training_settings: Settings, covertype_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(training_settings, covertype_csv, 600)
    monkeypatch.setenv("ANCORA_MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    dag = load_dag("covertype_train")
    task = dag.get_task("train")
    task.retries, task.retry_delay, task.retry_exponential_backoff = 1, timedelta(seconds=1), 0
    run = dag.test()
    instance = train_instance(run)
    assert run.state == "failed"
    assert (str(instance.state), instance.try_number) == ("failed", 2), "the first failure was retried"


def test_a_collect_run_that_stored_rows_queues_a_train_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.settings import Session

    monkeypatch.setenv("ANCORA_DATA_DB_URL", f"sqlite:///{tmp_path / 'raw.db'}")
    monkeypatch.setenv("ANCORA_GROUP_NUMBER", "4")
    load_dag("covertype_train")
    with Session() as session:
        session.execute(
            sa.delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == "covertype_train")
        )
        session.commit()

    with running_simulator(tmp_path / "sim", rotation_seconds=300) as url:
        monkeypatch.setenv("ANCORA_DATA_API_URL", url)
        get_settings.cache_clear()
        collect = load_dag("covertype_collect").test()
    assert collect.state == "success"

    with Session() as session:
        queued = session.execute(
            sa.select(AssetDagRunQueue.target_dag_id)
            .join(AssetModel, AssetDagRunQueue.asset_id == AssetModel.id)
            .where(AssetModel.uri == RAW_COVERTYPE_URI)
        ).scalars()
        assert "covertype_train" in set(queued)
