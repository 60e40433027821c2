from __future__ import annotations

import pytest

from ancora.schema import COLUMN_NAMES, SOIL_TYPES
from ancora.validation import (
    InvalidValue,
    QuarantinedRow,
    ValidRow,
    content_hash,
    parse_row,
    validate_row,
    validate_rows,
)

GOOD = ["2065", "97", "24", "242", "146", "268", "250", "198", "63", "552", "Cache", "C2702", "3"]


def with_value(column: str, value: object) -> list[object]:
    row: list[object] = list(GOOD)
    row[COLUMN_NAMES.index(column)] = value
    return row


def test_a_good_row_is_typed() -> None:
    values = parse_row(GOOD)
    assert values["Elevation"] == 2065
    assert values["Vertical_Distance_To_Hydrology"] == 146
    assert values["Wilderness_Area"] == "Cache"
    assert values["Soil_Type"] == "C2702"
    assert values["Cover_Type"] == 3
    assert list(values) == list(COLUMN_NAMES)


def test_numbers_written_as_floats_or_with_spaces_are_accepted() -> None:
    assert parse_row(with_value("Elevation", " 2065.0 "))["Elevation"] == 2065


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("Hillshade_9am", "256", "Hillshade_9am: 256 is above the maximum 255"),
        ("Hillshade_Noon", "-1", "Hillshade_Noon: -1 is below the minimum 0"),
        ("Aspect", "361", "Aspect: 361 is above the maximum 360"),
        ("Slope", "-3", "Slope: -3 is below the minimum 0"),
        ("Cover_Type", "8", "Cover_Type: 8 is above the maximum 7"),
        ("Cover_Type", "0", "Cover_Type: 0 is below the minimum 1"),
        ("Elevation", "high", "Elevation: expected a number, got 'high'"),
        ("Elevation", "12.5", "Elevation: expected a whole number, got '12.5'"),
        ("Elevation", None, "Elevation: expected a number, got None"),
        ("Wilderness_Area", "Comanche", "Wilderness_Area: 'Comanche' is not one of"),
        ("Soil_Type", "7745", "Soil_Type: '7745' does not match C followed by four digits"),
        ("Soil_Type", 7745, "Soil_Type: expected text, got 7745"),
    ],
)
def test_each_rule_names_the_field_and_the_problem(column: str, value: object, message: str) -> None:
    with pytest.raises(InvalidValue) as problem:
        parse_row(with_value(column, value))
    assert str(problem.value).startswith(message)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (GOOD[:-1], "row: expected 13 values, got 12"),
        ([*GOOD, "extra"], "row: expected 13 values, got 14"),
        ({"Elevation": "1"}, "row: expected a list of 13 values, got dict"),
        ("2065,97", "row: expected a list of 13 values, got str"),
    ],
)
def test_wrong_shapes_are_rejected(raw: object, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        parse_row(raw)


def test_every_known_soil_type_passes_the_pattern() -> None:
    for soil in SOIL_TYPES:
        assert parse_row(with_value("Soil_Type", soil))["Soil_Type"] == soil


def test_bad_rows_go_to_quarantine_without_stopping_good_ones() -> None:
    bad = with_value("Hillshade_3pm", "300")
    report = validate_rows([GOOD, bad, GOOD[:5], with_value("Elevation", "2066")])
    assert [r.values["Elevation"] for r in report.valid] == [2065, 2066]
    assert [r.raw for r in report.quarantined] == [bad, GOOD[:5]]
    assert report.quarantined[0].reason == "Hillshade_3pm: 300 is above the maximum 255"


def test_hash_depends_on_typed_values_not_on_spelling() -> None:
    first = validate_row(GOOD)
    second = validate_row(with_value("Elevation", "2065.0"))
    other = validate_row(with_value("Elevation", "2066"))
    assert isinstance(first, ValidRow)
    assert isinstance(second, ValidRow)
    assert isinstance(other, ValidRow)
    assert first.content_hash == second.content_hash
    assert first.content_hash != other.content_hash
    assert len(first.content_hash) == 32


def test_hash_separates_fields() -> None:
    assert content_hash(["12", "3"]) != content_hash(["1", "23"])


def test_quarantined_rows_hash_their_raw_form() -> None:
    bad = with_value("Slope", "x")
    first, second = validate_row(bad), validate_row(list(bad))
    assert isinstance(first, QuarantinedRow)
    assert isinstance(second, QuarantinedRow)
    assert first.content_hash == second.content_hash


def test_the_quick_path_and_the_full_rules_agree_on_tricky_rows() -> None:
    tricky = [
        GOOD,
        with_value("Elevation", " 2065 "),
        with_value("Elevation", "2065.0"),
        with_value("Elevation", "1e3"),
        with_value("Elevation", 2065),
        with_value("Elevation", True),
        with_value("Soil_Type", "C7745\n"),
        with_value("Soil_Type", " C7745"),
        with_value("Wilderness_Area", "Rawah "),
        with_value("Hillshade_3pm", "255"),
        with_value("Hillshade_3pm", "256"),
        with_value("Cover_Type", "7"),
        with_value("Cover_Type", "-0"),
        with_value("Aspect", ""),
        tuple(GOOD),
    ]
    report = validate_rows(tricky)
    one_by_one = [validate_row(raw) for raw in tricky]
    assert report.valid == [r for r in one_by_one if isinstance(r, ValidRow)]
    assert report.quarantined == [r for r in one_by_one if isinstance(r, QuarantinedRow)]
    assert len(report.valid) == 11
