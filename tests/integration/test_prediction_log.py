"""The prediction log against real events databases (SQLite and this machine's MariaDB): nothing lost
below the queue bound, overflow and write errors counted, sampling per request, migrations applied."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from ancora.dispatch.events import MIGRATIONS_DIR, create_events_engine, upgrade_events_schema
from ancora.monitoring.prediction_log import LoggedRequest, PredictionLogger
from ancora.monitoring.store import MonitoringStore, open_monitoring_store
from ancora.schema import FEATURE_NAMES
from ancora.serving.rows import EXAMPLE_ROW, FeatureColumns

CLASSES = (1, 2, 3, 4, 5, 6, 7)
ROW = tuple(int(v) if v.isdigit() else v for v in (EXAMPLE_ROW[name] for name in FEATURE_NAMES))


def one_row(request_id: str, winner: int = 1) -> LoggedRequest:
    probabilities = np.full((1, 7), 0.05)
    probabilities[0, winner] = 0.7
    return LoggedRequest(
        at=datetime.now(UTC).timestamp(),
        request_id=request_id,
        route="/predict",
        username="ada",
        model_name="covertype",
        model_version="3",
        classes=CLASSES,
        values=[ROW],
        winners=np.array([winner]),
        probabilities=probabilities,
        latency_ms=4.2,
    )


def batch(request_id: str, rows: int) -> LoggedRequest:
    columns = {
        name: np.array([value] * rows, dtype=object) for name, value in zip(FEATURE_NAMES, ROW, strict=True)
    }
    probabilities = np.tile(np.array([0.1, 0.6, 0.1, 0.05, 0.05, 0.05, 0.05]), (rows, 1))
    return LoggedRequest(
        at=datetime.now(UTC).timestamp(),
        request_id=request_id,
        route="/predict/batch",
        username=None,
        model_name="covertype",
        model_version="3",
        classes=CLASSES,
        values=FeatureColumns(columns),
        winners=probabilities.argmax(axis=1),
        probabilities=probabilities,
        latency_ms=80.0,
    )


@pytest.fixture(params=["sqlite", "mariadb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MonitoringStore:
    if request.param == "sqlite":
        return open_monitoring_store(f"sqlite:///{tmp_path / 'events.db'}")
    return open_monitoring_store(request.getfixturevalue("mariadb_url"))


def test_every_row_below_the_queue_bound_is_written_with_what_was_asked_and_answered(
    store: MonitoringStore,
) -> None:
    counted: dict[str, int] = {}
    logger = PredictionLogger(
        store,
        max_queued_rows=10_000,
        max_rows_per_write=300,
        on_rows=lambda outcome, n: counted.__setitem__(outcome, counted.get(outcome, 0) + n),
    )
    logger.start()
    try:
        for number in range(1000):
            assert logger.log(one_row(f"r{number}", winner=number % 7))
        assert logger.log(batch("b1", 2500))
        assert logger.flush(30)
    finally:
        logger.stop()
    assert counted == {"written": 3500}
    frame = store.predictions(
        datetime.now(UTC) - timedelta(minutes=5), datetime.now(UTC) + timedelta(minutes=1)
    )
    assert len(frame) == 3500
    first = frame[frame["request_id"] == "r3"].iloc[0]
    assert (first["username"], first["model_version"], first["route"]) == ("ada", "3", "/predict")
    assert first["predicted_class"] == 4 and first["probability"] == pytest.approx(0.7)
    assert (
        first["Elevation"] == int(EXAMPLE_ROW["Elevation"]) and first["Soil_Type"] == EXAMPLE_ROW["Soil_Type"]
    )
    assert first["latency_ms"] == pytest.approx(4.2)
    rows_of_batch = frame[frame["request_id"] == "b1"]
    assert sorted(rows_of_batch["row_index"]) == list(range(2500))
    assert set(rows_of_batch["predicted_class"]) == {2}
    assert store.count_request("b1") == 2500


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    store = open_monitoring_store(f"sqlite:///{tmp_path / 'events.db'}")
    logger = PredictionLogger(store, max_queued_rows=100)  # not started: nothing drains the queue
    assert logger.log(batch("fits", 100))
    assert not logger.log(one_row("one-too-many"))
    assert not logger.log(batch("far-too-many", 50))
    assert logger.counts["dropped_queue_full"] == 51
    logger.start()
    assert logger.flush(30)
    logger.stop()
    assert logger.counts["written"] == 100
    assert store.count_request("one-too-many") == 0


def test_a_database_that_fails_costs_rows_not_requests(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = open_monitoring_store(f"sqlite:///{path}")
    with store.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE prediction_log"))
    logger = PredictionLogger(store, flush_seconds=0.05)
    logger.start()
    try:
        assert logger.log(one_row("lost"))
        assert logger.flush(30)
    finally:
        logger.stop()
    assert logger.counts["dropped_write_error"] == 1 and logger.counts["written"] == 0


def test_sampling_keeps_a_share_of_requests(tmp_path: Path) -> None:
    store = open_monitoring_store(f"sqlite:///{tmp_path / 'events.db'}")
    draws = iter([0.1, 0.9, 0.2, 0.8])
    logger = PredictionLogger(store, sample_rate=0.5, random_source=lambda: next(draws))
    logger.start()
    kept = [logger.log(one_row(f"s{n}")) for n in range(4)]
    assert logger.flush(30)
    logger.stop()
    assert kept == [True, False, True, False]
    assert (logger.counts["written"], logger.counts["sampled_out"]) == (2, 2)


def test_the_monitoring_tables_come_from_revision_0003_on_top_of_the_dispatch_heartbeat(
    mariadb_url: str,
) -> None:
    engine = create_events_engine(mariadb_url)
    upgrade_events_schema(engine, "0002")
    assert "prediction_log" not in sa.inspect(engine).get_table_names()
    upgrade_events_schema(engine)
    tables = set(sa.inspect(engine).get_table_names())
    assert {
        "dispatches",
        "prediction_log",
        "drift_reports",
        "drift_features",
        "alerts",
        "service_health",
    } <= tables
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    tables = set(sa.inspect(engine).get_table_names())
    assert "prediction_log" not in tables and "dispatches" in tables, "the downgrade removes only them"
