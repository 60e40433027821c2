"""The drift DAGs run for real (dag.test) against a trained champion: reports stored in the events
database and put on the champion's training run in MLflow; skipped with the reason while young."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from ancora.config import Settings, get_settings
from ancora.monitoring.drift_runs import NothingToCompare, batch_drift
from ancora.monitoring.store import open_monitoring_store
from ancora.store import open_raw_store
from ancora.training.run import TrainingRequest, train_and_register
from tests.support.training_data import read_csv_rows, store_rows

pytestmark = pytest.mark.usefixtures("airflow_db")


def load_dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from ancora.locations import dags_folder

    bag = DagBag(dag_folder=str(dags_folder()))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


@pytest.fixture
def drift_settings(training_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ANCORA_DISPATCH_EVENTS_DB_URL", f"sqlite:///{tmp_path / 'events.db'}")
    monkeypatch.setenv("ANCORA_TRAIN_MIN_CLASS_ROWS", "3")
    get_settings.cache_clear()
    return get_settings()


def test_without_a_champion_the_batch_drift_run_ends_skipped(
    drift_settings: Settings, covertype_csv: Path
) -> None:
    store_rows(
        open_raw_store(drift_settings.data_db_url),
        read_csv_rows(covertype_csv, limit=300),
        batches=1,
    )
    run = load_dag("covertype_drift_batch").test()
    assert run.state == "success"
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["compare_batch"] == "skipped"
    with pytest.raises(NothingToCompare, match="no champion yet"):  # the reason the task logged
        batch_drift(drift_settings)


def test_a_collected_batch_is_compared_stored_and_published_to_mlflow(
    drift_settings: Settings, covertype_csv: Path
) -> None:
    raw = open_raw_store(drift_settings.data_db_url)
    store_rows(raw, read_csv_rows(covertype_csv, limit=1200), batches=3)
    outcome = train_and_register(
        drift_settings, TrainingRequest.from_settings(drift_settings, ["logistic_regression"], 1)
    )
    run = load_dag("covertype_drift_batch").test()
    assert run.state == "success"
    summary = next(ti for ti in run.get_task_instances() if ti.task_id == "compare_batch").xcom_pull(
        task_ids="compare_batch"
    )
    assert summary["subject"] == "batch 3" and summary["reference"]["version"] == outcome.version
    assert len(summary["features"]) == 12 and summary["retrain"] is False
    store = open_monitoring_store(drift_settings.dispatch_events_db_url)
    reports = store.drift_reports(datetime.now(UTC) - timedelta(hours=1))
    assert reports["subject"].tolist() == ["batch 3"]
    assert len(store.drift_history(datetime.now(UTC) - timedelta(hours=1))) == 12
    client = MlflowClient(drift_settings.mlflow_tracking_uri)
    artifacts = [item.path for item in client.list_artifacts(outcome.run_id, "drift/batch")]
    assert sorted(artifacts) == ["drift/batch/batch-3.html", "drift/batch/batch-3.json"]
    again = load_dag("covertype_drift_batch").test()
    assert again.state == "success"
    assert len(store.drift_reports(datetime.now(UTC) - timedelta(hours=1))) == 1, (
        "a rerun replaces the report"
    )
