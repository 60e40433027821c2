"""The request model derived from the data contract, and the CSV reader."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from ancora.schema import FEATURE_NAMES, NUMERIC_FEATURES
from ancora.serving.rows import (
    EXAMPLE_ROW,
    BatchTooLarge,
    FeatureRow,
    RowsInvalid,
    features_frame,
    parse_csv_columns,
    parse_csv_rows,
    parse_json_columns,
    parse_json_row,
    parse_json_rows,
    row_values,
    validate_rows,
)


def _errors(records: Any) -> list[dict[str, Any]]:
    with pytest.raises(RowsInvalid) as caught:
        validate_rows(records, limit=100)
    return caught.value.errors


TYPED = {k: int(v) if k in NUMERIC_FEATURES else v for k, v in EXAMPLE_ROW.items()}


def test_raw_strings_and_typed_values_give_the_same_row() -> None:
    frame = validate_rows([EXAMPLE_ROW], 10)
    pd.testing.assert_frame_equal(frame, validate_rows([TYPED], 10))
    assert frame.iloc[0].tolist()[:1] + frame.iloc[0].tolist()[-2:] == [3207, "Rawah", "C7201"]


def test_whole_numbers_written_as_floats_are_accepted_and_the_label_is_ignored() -> None:
    row = {**EXAMPLE_ROW, "Elevation": "3207.0", "Slope": 4.0, "Cover_Type": "2"}
    assert validate_rows([row], 10).iloc[0].tolist()[:3] == [3207, 249, 4]


def test_the_fast_path_and_the_row_by_row_path_build_the_same_frame() -> None:
    clean = [EXAMPLE_ROW, TYPED, {**EXAMPLE_ROW, "Elevation": "2065", "Soil_Type": "C2702"}]
    slow = [*clean[:2], {**clean[2], "Elevation": "2065.0"}]
    pd.testing.assert_frame_equal(validate_rows(clean, 10), validate_rows(slow, 10))
    pd.testing.assert_frame_equal(
        validate_rows(clean, 10), features_frame([row_values(FeatureRow(**r)) for r in clean])
    )


@pytest.mark.parametrize(
    ("field", "value", "error_type"),
    [
        ("Elevation", "abc", "value_error"),
        ("Elevation", "12.5", "value_error"),
        ("Slope", True, "value_error"),
        ("Slope", 91, "less_than_equal"),
        ("Vertical_Distance_To_Hydrology", -1001, "greater_than_equal"),
        ("Wilderness_Area", "Atlantis", "literal_error"),
        ("Soil_Type", "C9999", "literal_error"),
        ("Soil_Type", 7201, "literal_error"),
    ],
)
def test_a_bad_value_is_reported_with_its_row_and_field(field: str, value: Any, error_type: str) -> None:
    errors = _errors([EXAMPLE_ROW, {**EXAMPLE_ROW, field: value}])
    assert [(e["loc"], e["type"]) for e in errors] == [(("body", 1, field), error_type)]


def test_a_missing_field_is_named() -> None:
    row = {k: v for k, v in EXAMPLE_ROW.items() if k != "Hillshade_Noon"}
    errors = _errors([row])
    assert errors[0]["loc"] == ("body", 0, "Hillshade_Noon")
    assert errors[0]["type"] == "missing"


@pytest.mark.parametrize("body", [{"rows": []}, [], "text", None])
def test_a_body_that_is_not_a_list_of_rows_is_refused(body: Any) -> None:
    assert _errors(body)[0]["loc"] == ("body",)


def test_the_row_limit_is_checked_before_the_rows() -> None:
    with pytest.raises(BatchTooLarge) as caught:
        validate_rows([{"nonsense": 1}] * 11, limit=10)
    assert caught.value.rows == 11


def _csv(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(",".join(cells) for cells in [header, *rows]) + "\n"


def test_csv_columns_may_come_in_any_order_with_the_label() -> None:
    header = [*reversed(FEATURE_NAMES), "Cover_Type"]
    text = _csv(header, [[*(EXAMPLE_ROW[name] for name in reversed(FEATURE_NAMES)), "2"]] * 3)
    pd.testing.assert_frame_equal(parse_csv_rows(text, 10), validate_rows([EXAMPLE_ROW] * 3, 10))
    slow = text.replace("3207", "3207.0")
    pd.testing.assert_frame_equal(parse_csv_rows(slow, 10), validate_rows([EXAMPLE_ROW] * 3, 10))


def test_a_wrong_csv_header_names_the_missing_and_unexpected_columns() -> None:
    header = [name for name in FEATURE_NAMES if name != "Slope"] + ["slope_deg"]
    with pytest.raises(RowsInvalid) as caught:
        parse_csv_rows(_csv(header, [["1"] * len(header)]), 10)
    (error,) = caught.value.errors
    assert error["loc"] == ("body", "header")
    assert "missing columns: Slope" in error["msg"]
    assert "unexpected columns: slope_deg" in error["msg"]


def test_csv_rows_are_validated_like_json_rows() -> None:
    values = [EXAMPLE_ROW[name] for name in FEATURE_NAMES]
    bad = [*values[:-1], "C0000"]
    with pytest.raises(RowsInvalid) as caught:
        parse_csv_rows(_csv(list(FEATURE_NAMES), [values, bad]), 10)
    assert caught.value.errors[0]["loc"] == ("body", 1, "Soil_Type")


def test_a_csv_line_with_the_wrong_number_of_fields_is_named() -> None:
    values = [EXAMPLE_ROW[name] for name in FEATURE_NAMES]
    with pytest.raises(RowsInvalid) as caught:
        parse_csv_rows(_csv(list(FEATURE_NAMES), [values, values[:5]]), 10)
    assert caught.value.errors[0]["loc"] == ("body", "line", 3)


@pytest.mark.parametrize("clean", [True, False])
def test_an_oversize_csv_is_refused_at_the_first_row_past_the_limit(clean: bool) -> None:
    values = [EXAMPLE_ROW[name] for name in FEATURE_NAMES]
    if not clean:
        values[0] = " 3207"  # the csv module's path, which pydantic reads
    with pytest.raises(BatchTooLarge) as caught:
        parse_csv_rows(_csv(list(FEATURE_NAMES), [values] * 25), 10)
    assert str(caught.value) == "the batch has more than 10 rows; at most 10 are accepted per request"


def test_the_frame_has_the_training_columns_and_types() -> None:
    frame = validate_rows([EXAMPLE_ROW, EXAMPLE_ROW], 10)
    assert list(frame.columns) == list(FEATURE_NAMES)
    assert all(frame[name].dtype == "int64" for name in NUMERIC_FEATURES)
    assert frame["Soil_Type"].tolist() == ["C7201", "C7201"]


EDGE_VALUES = [
    "12", " 12 ", "+12", "1_000", "12.0", "12.5", "1e1", "0x10", "", "\u0661\u0662", "12\n", "0012",
    "-0", "nan", "inf", "40.0000000000000001", True, False, None, 12, 12.0, 12.5, 1e1, -1, 91, [], {},
]  # fmt: skip


def _outcome(action: Any) -> Any:
    try:
        return action()
    except (RowsInvalid, ValidationError) as error:
        return "refused", str(error)


@pytest.mark.parametrize("value", EDGE_VALUES)
def test_the_json_fast_paths_accept_and_read_exactly_what_the_row_model_does(value: Any) -> None:
    row = {**EXAMPLE_ROW, "Slope": value}
    body = json.dumps([row, EXAMPLE_ROW]).encode()
    fast = _outcome(lambda: parse_json_rows(body, 10).to_numpy().tolist())
    slow = _outcome(lambda: validate_rows(json.loads(body), 10).to_numpy().tolist())
    assert fast == slow
    one = json.dumps(row).encode()
    assert _outcome(lambda: parse_json_row(one)) == _outcome(
        lambda: row_values(FeatureRow.model_validate_json(one))
    )


@pytest.mark.parametrize("value", ["Rawah", "rawah", " Rawah", 1, None, "Mars"])
def test_the_json_fast_paths_check_categories_like_the_row_model(value: Any) -> None:
    body = json.dumps([{**EXAMPLE_ROW, "Wilderness_Area": value}]).encode()
    fast = _outcome(lambda: parse_json_rows(body, 10).to_numpy().tolist())
    assert fast == _outcome(lambda: validate_rows(json.loads(body), 10).to_numpy().tolist())


def test_json_batch_errors_name_the_row_and_field_and_the_limit_holds() -> None:
    body = json.dumps([EXAMPLE_ROW, {**EXAMPLE_ROW, "Soil_Type": "C0000"}]).encode()
    with pytest.raises(RowsInvalid) as caught:
        parse_json_rows(body, 10)
    assert caught.value.errors[0]["loc"] == ("body", 1, "Soil_Type")
    with pytest.raises(BatchTooLarge):
        parse_json_rows(json.dumps([EXAMPLE_ROW] * 11).encode(), 10)
    with pytest.raises(RowsInvalid) as caught:
        parse_json_rows(b"[{", 10)
    assert caught.value.errors[0]["type"] == "json_invalid"


def test_a_body_the_csv_module_cannot_tokenise_is_refused_not_a_crash() -> None:
    # Found by schemathesis: a carriage return inside an unquoted header cell.
    body = b"\xf2\xa9\xa7\xb4X6\x0e\xc2\x91\r\xf3\x94\x80\x86I\xc2\x82\xf0\xba\x93\xaf".decode()
    with pytest.raises(RowsInvalid) as refused:
        parse_csv_columns(body, 10)
    assert refused.value.errors[0]["loc"][0] == "body"


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (parse_json_columns, b"[" + b"{}," * 6_500_000 + b"{}]"),  # 20 MB: decoded whole, 0.8 GB
        (parse_json_columns, b"[" + b"0," * 9_900_000 + b"0]"),
        (parse_csv_columns, (",".join(FEATURE_NAMES) + "\n" + "1\n" * 9_000_000).encode()),  # was 2.2 GB
    ],
)
def test_a_body_of_millions_of_tiny_rows_is_refused_in_bounded_memory(parse: Any, body: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(BatchTooLarge) as caught:
            parse(body, 10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.rows is None
    assert peak < 2 * len(body) + 16_000_000, f"{peak / 1e6:.0f} MB for a {len(body) / 1e6:.0f} MB body"


def test_a_wide_or_duplicated_csv_header_is_named_without_comparing_every_pair() -> None:
    with pytest.raises(RowsInvalid) as wide:
        parse_csv_columns(",".join(f"c{index}" for index in range(20_000)) + "\n", 10)
    assert "it has 20000 columns; at most 13 are allowed" in wide.value.errors[0]["msg"]
    header = [*FEATURE_NAMES[:-1], "Slope"]
    with pytest.raises(RowsInvalid) as duplicated:
        parse_csv_columns(",".join(header) + "\n", 10)
    assert "missing columns: Soil_Type" in duplicated.value.errors[0]["msg"]
    assert "duplicated columns: Slope" in duplicated.value.errors[0]["msg"]


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b"[" + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"]", b"[\xff]"],
)
def test_deep_nesting_and_invalid_utf8_are_invalid_json(body: bytes) -> None:
    with pytest.raises(RowsInvalid) as caught:
        parse_json_columns(body, 10)
    assert caught.value.errors[0]["type"] == "json_invalid"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_refused_naming_the_field(literal: str) -> None:
    body = (json.dumps(EXAMPLE_ROW)[:-1] + f', "Aspect": {literal}}}').encode()
    with pytest.raises(RowsInvalid) as caught:
        parse_json_columns(b"[" + body + b"]", 10)
    assert [(e["loc"], e["type"]) for e in caught.value.errors] == [(("body", 0, "Aspect"), "finite_number")]
    with pytest.raises(ValidationError) as single:
        parse_json_row(body)
    assert single.value.errors()[0]["type"] == "finite_number"


def test_a_batch_of_bad_rows_is_checked_only_until_an_answer_is_full() -> None:
    records = [dict(EXAMPLE_ROW) for _ in range(10_000)]
    records[250] = {**EXAMPLE_ROW, "Slope": "steep"}
    errors = _errors_of(records)
    assert [(e["loc"], e["type"]) for e in errors] == [(("body", 250, "Slope"), "value_error")]
    bad = [{"x": 1}] * 10_000
    errors = _errors_of(bad)
    assert len(errors) <= 2 * 12 * 100
    assert errors[0]["loc"] == ("body", 0, "Elevation")


def _errors_of(records: Any) -> list[dict[str, Any]]:
    with pytest.raises(RowsInvalid) as caught:
        validate_rows(records, limit=10_000)
    return caught.value.errors
