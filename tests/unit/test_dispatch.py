"""Dispatch building blocks on SQLite: row checks, the datalake layout, writes that never repeat, events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from ancora.config import Settings
from ancora.dispatch.datalake import Datalake, DatalakeLayout, open_datalake
from ancora.dispatch.events import Counters, RowPrediction, open_events_store
from ancora.dispatch.run import new_dispatch_id
from ancora.dispatch.seed import seed_datalake
from ancora.schema import FEATURE_NAMES
from ancora.serving.rows import EXAMPLE_ROW, check_columns


def columns_of(rows: list[dict[str, object]]) -> dict[str, list[object]]:
    return {name: [row[name] for row in rows] for name in FEATURE_NAMES}


def test_clean_rows_are_all_kept_in_order() -> None:
    second = {**EXAMPLE_ROW, "Elevation": 2100}
    checked = check_columns(columns_of([EXAMPLE_ROW, second]))
    assert checked.positions == [0, 1]
    assert checked.errors == {}
    assert checked.frame["Elevation"].tolist() == [3207, 2100]


def test_invalid_rows_are_reported_one_by_one_with_the_field_named() -> None:
    rows: list[dict[str, object]] = [
        dict(EXAMPLE_ROW),
        {**EXAMPLE_ROW, "Elevation": 99_999},
        {**EXAMPLE_ROW, "Slope": None},
        dict(EXAMPLE_ROW),
        {**EXAMPLE_ROW, "Wilderness_Area": "Mars", "Soil_Type": "C0000"},
    ]
    checked = check_columns(columns_of(rows))
    assert checked.positions == [0, 3]
    assert len(checked.frame) == 2
    assert set(checked.errors) == {1, 2, 4}
    assert checked.errors[1].startswith("Elevation: Input should be less than or equal to 5000")
    assert "99999" in checked.errors[1]
    assert checked.errors[2].startswith("Slope:")
    assert "Wilderness_Area:" in checked.errors[4] and "Soil_Type:" in checked.errors[4]


def test_no_rows_check_to_an_empty_frame() -> None:
    checked = check_columns({name: [] for name in FEATURE_NAMES})
    assert checked.positions == [] and checked.errors == {} and checked.frame.empty


def settings_with(tmp_path: Path, **values: str) -> Settings:
    return Settings(state_dir=tmp_path, **values)  # type: ignore[arg-type]


def test_layout_maps_renamed_columns_and_a_schema(tmp_path: Path) -> None:
    layout = DatalakeLayout.from_settings(
        settings_with(
            tmp_path,
            datalake_table="lake.observations",
            datalake_feature_columns='{"Elevation": "elevation_m"}',
            datalake_marker_column="",
        )
    )
    assert (layout.schema, layout.table, layout.qualified_table) == (
        "lake",
        "observations",
        "lake.observations",
    )
    assert layout.features["Elevation"] == "elevation_m" and layout.features["Slope"] == "Slope"
    assert layout.marker is None


@pytest.fixture
def lake(tmp_path: Path) -> Datalake:
    settings = settings_with(tmp_path, datalake_url=f"sqlite:///{tmp_path / 'lake.db'}")
    datalake = open_datalake(settings)
    seed_datalake(datalake, rows=25, invalid_rows=3, seed=1)
    return datalake


def test_pending_rows_are_paged_by_key(lake: Datalake) -> None:
    first = lake.read_pending(None, 10)
    second = lake.read_pending(first.keys[-1], 10)
    third = lake.read_pending(second.keys[-1], 10)
    assert [len(first), len(second), len(third)] == [10, 10, 5]
    assert first.keys + second.keys + third.keys == list(range(1, 26))
    assert set(first.columns) == set(FEATURE_NAMES)
    assert lake.count_pending() == 25


def test_a_batch_written_twice_changes_nothing_the_second_time(lake: Datalake) -> None:
    batch = lake.read_pending(None, 10)
    by_class = {2: batch.keys[:6], 1: batch.keys[6:9]}
    assert lake.write_back("first", by_class, invalid=[batch.keys[9]]) == 9
    assert lake.write_back("second", by_class, invalid=[batch.keys[9]]) == 0
    with lake.engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT id, predicted_cover_type, dispatch_id FROM covertype_observations WHERE id <= 10")
        ).all()
    assert {row.dispatch_id for row in rows} == {"first"}
    assert [row.predicted_cover_type for row in rows] == [2] * 6 + [1] * 3 + [None]
    assert lake.count_pending() == 15
    assert lake.read_pending(None, 100).keys == list(range(11, 26))


def test_without_a_marker_column_invalid_rows_stay_pending(tmp_path: Path) -> None:
    settings = settings_with(
        tmp_path, datalake_url=f"sqlite:///{tmp_path / 'lake.db'}", datalake_marker_column=""
    )
    datalake = open_datalake(settings)
    seed_datalake(datalake, rows=4)
    assert datalake.write_back("d", {3: [1, 2]}, invalid=[3]) == 2
    assert datalake.read_pending(None, 10).keys == [3, 4]


def test_status_reports_a_missing_table_instead_of_raising(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, datalake_url=f"sqlite:///{tmp_path / 'empty.db'}")
    status = open_datalake(settings).status()
    assert not status.ok
    assert status.pending_rows is None and status.latency_ms is None
    assert "covertype_observations" in (status.error or "")


def test_events_round_trip(tmp_path: Path) -> None:
    store = open_events_store(f"sqlite:///{tmp_path / 'events.db'}")
    dispatch_id = new_dispatch_id()
    store.start(dispatch_id, "manual__1", "covertype_observations", "datalake sqlite")
    store.set_model(dispatch_id, "covertype", "3")
    now = datetime.now(UTC)
    store.record_batch(
        dispatch_id,
        [("collected", now, "batch 1: 2 rows"), ("predicted", now, None), ("persisted", now, None)],
        [
            RowPrediction(0, "7", 2, "ok", None),
            RowPrediction(1, "8", None, "invalid", "Slope: x"),
        ],
        Counters(rows_read=2, rows_predicted=1, rows_invalid=1, rows_written=1),
    )
    store.finish(dispatch_id, "succeeded", [("finished", datetime.now(UTC), "done")])

    detail = store.get(dispatch_id)
    assert detail is not None
    assert detail.dispatch.state == "succeeded" and detail.dispatch.model_version == "3"
    assert detail.dispatch.ended_at is not None and detail.dispatch.ended_at.tzinfo is not None
    assert [event.event for event in detail.events] == [
        "started",
        "collected",
        "predicted",
        "persisted",
        "finished",
    ]
    assert [(p.row_key, p.predicted_class, p.status) for p in detail.predictions] == [
        ("7", 2, "ok"),
        ("8", None, "invalid"),
    ]
    window = store.list_dispatches(now - timedelta(minutes=1), now + timedelta(minutes=1))
    assert [record.id for record in window] == [dispatch_id]
    assert store.list_dispatches(now - timedelta(minutes=1), now + timedelta(minutes=1), state="failed") == []
    assert store.list_dispatches(now - timedelta(days=2), now - timedelta(days=1)) == []
    assert store.get("unknown") is None
