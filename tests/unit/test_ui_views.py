"""The app's data shaping: samples from the shipped data, DAG params as widgets, tables and durations."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from ancora.clients.inference import error_detail
from ancora.schema import COVER_TYPE_NAMES, FEATURE_NAMES, LABEL_NAME
from ancora.ui import views


def test_sample_rows_cover_every_class_of_the_shipped_data() -> None:
    rows = views.sample_rows()
    assert [int(row[LABEL_NAME]) for row in rows] == sorted(COVER_TYPE_NAMES)
    assert all(set(FEATURE_NAMES) <= set(row) for row in rows)
    assert "true class 1: Spruce/Fir" in views.sample_label(rows[0])


def test_sample_csv_has_the_upload_header_and_the_asked_rows() -> None:
    text = views.sample_csv(rows=5)
    lines = text.splitlines()
    assert lines[0].split(",") == [*FEATURE_NAMES, LABEL_NAME]
    assert len(lines) == 6


def test_row_for_request_keeps_contract_order_and_whole_numbers() -> None:
    values = {name: 1.0 for name in FEATURE_NAMES} | {
        "Wilderness_Area": "Rawah",
        "Soil_Type": "C7201",
        "x": 5,
    }
    row = views.row_for_request(values)
    assert list(row) == list(FEATURE_NAMES)
    assert row["Elevation"] == 1 and isinstance(row["Elevation"], int)


def test_train_params_become_widgets() -> None:
    params = {
        "families": {
            "value": ["random_forest"],
            "schema": {
                "type": "array",
                "items": {"type": "string", "enum": ["logistic_regression", "random_forest"]},
            },
            "description": "Model families to search.",
        },
        "search_budget": {"value": 3, "schema": {"type": "integer", "minimum": 1, "maximum": 50}},
        "dry_run": {"value": False, "schema": {"type": "boolean"}},
        "note": {"value": "x", "schema": {"type": "string"}},
    }
    fields = {field.name: field for field in views.param_fields(params)}
    assert fields["families"].kind == "multiselect"
    assert fields["families"].choices == ("logistic_regression", "random_forest")
    assert fields["search_budget"].kind == "integer"
    assert (fields["search_budget"].minimum, fields["search_budget"].maximum) == (1, 50)
    assert fields["dry_run"].kind == "boolean"
    assert fields["note"].kind == "text"
    assert views.param_fields(None) == []


def test_durations_count_running_runs_up_to_now() -> None:
    now = datetime(2026, 11, 20, 12, 0, 30, tzinfo=UTC)
    assert views.duration_seconds("2026-11-20T12:00:00Z", "2026-11-20T12:00:10Z") == 10.0
    assert views.duration_seconds("2026-11-20T12:00:00+00:00", None, now) == 30.0
    assert views.duration_seconds(None, None) is None
    assert views.shown_time(0) == "1970-01-01 00:00:00 UTC"


def test_collection_frame_sums_runs_per_batch() -> None:
    frame = views.collection_frame(
        [
            {"batch": 1, "inserted": 10, "quarantined": 1, "duplicates": 2},
            {"batch": 1, "inserted": 5, "quarantined": 0, "duplicates": 7},
            {"batch": None, "inserted": 0, "exhausted": True},
            {"batch": 2, "inserted": 3, "quarantined": 4, "duplicates": 0},
        ]
    )
    assert frame.to_dict("records") == [
        {"batch": 1, "collected": 15, "quarantined": 1, "duplicates": 9, "runs": 2},
        {"batch": 2, "collected": 3, "quarantined": 4, "duplicates": 0, "runs": 1},
    ]


def test_batch_result_appends_class_and_its_probability() -> None:
    uploaded = pd.DataFrame({"Elevation": ["3000", "2000"]})
    answer = {
        "model_version": "4",
        "predictions": [
            {"prediction": 2, "class_name": "Lodgepole Pine", "probabilities": {"1": 0.2, "2": 0.8}},
            {"prediction": 1, "class_name": "Spruce/Fir", "probabilities": {"1": 0.6, "2": 0.4}},
        ],
    }
    result = views.batch_result_frame(uploaded, answer)
    assert list(result["predicted_class"]) == [2, 1]
    assert list(result["probability"]) == [0.8, 0.6]
    assert set(result["model_version"]) == {"4"}


def test_dispatch_filter_matches_id_model_and_error() -> None:
    items = [
        {"id": "a1", "state": "failed", "error": "datalake lost", "model_name": "m", "model_version": "2"},
        {"id": "b2", "state": "succeeded", "error": None, "model_name": "m", "model_version": "3"},
    ]
    assert list(views.dispatches_frame(items, "LOST")["id"]) == ["a1"]
    assert list(views.dispatches_frame(items, "m v3")["id"]) == ["b2"]
    assert len(views.dispatches_frame(items)) == 2


def test_validation_errors_are_one_readable_line_each() -> None:
    import httpx

    response = httpx.Response(
        422,
        json={"detail": [{"loc": ["body", 0, "Slope"], "msg": "Input should be less than or equal to 90"}]},
    )
    assert error_detail(response) == "0.Slope: Input should be less than or equal to 90"
