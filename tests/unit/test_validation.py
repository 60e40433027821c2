from __future__ import annotations

import random

import pytest

from ancora.schema import COLUMN_NAMES, COLUMNS, NUMERIC, SOIL_TYPES, Column
from ancora.validation import (
    InvalidValue,
    QuarantinedRow,
    ValidRow,
    all_canonical,
    canonical_texts,
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


def test_hashes_of_stored_rows_do_not_change_between_versions() -> None:
    """Rows already in a store were deduplicated under this digest; a new one would store them again."""
    assert validate_rows([GOOD]).valid[0].content_hash == "515afa2f3f3a089d023a02319b58affe"
    assert content_hash(parse_row(GOOD).values()) == "515afa2f3f3a089d023a02319b58affe"


def fuzzed_rows(count: int, seed: int) -> list[object]:
    spellings: list[object] = [
        "", " 1", "01", "-0", "1.0", "1e2", "+5", "x", None, 5, True, [1], "\x1f", "Rawah ",
        "\u0663", "C\u0663\u0664\u0665\u0666", "-1", "256", "361", "5001", "10001", "-1001", "-1000",
        "0", "7", "8", "C0000",
    ]  # fmt: skip
    rng = random.Random(seed)
    rows: list[object] = []
    for _ in range(count):
        row: list[object] = list(GOOD)
        for _ in range(rng.randint(0, 2)):
            row[rng.randrange(len(row))] = rng.choice(spellings)
        rows.append(row)
    return rows


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_path_agrees_with_the_full_rules_row_by_row(seed: int) -> None:
    rows = fuzzed_rows(2000, seed)
    report = validate_rows(rows)
    one_by_one = [validate_row(raw) for raw in rows]
    assert report.valid == [r for r in one_by_one if isinstance(r, ValidRow)]
    assert report.quarantined == [r for r in one_by_one if isinstance(r, QuarantinedRow)]
    assert report.valid and report.quarantined


def test_a_response_of_canonical_rows_takes_the_column_check_and_agrees() -> None:
    rows = [with_value("Elevation", str(elevation)) for elevation in range(0, 5001, 7)]
    assert all_canonical(rows)
    report = validate_rows(rows)
    assert report.valid == [validate_row(raw) for raw in rows]
    assert not all_canonical([*rows, with_value("Elevation", "02065")])
    assert not all_canonical([*rows, GOOD[:12]])
    assert not all_canonical([*rows, with_value("Elevation", [1])])


@pytest.mark.parametrize("column", COLUMNS, ids=lambda column: column.name)
def test_canonical_texts_are_exactly_what_the_full_rules_accept_unchanged(column: Column) -> None:
    accepted = canonical_texts()[COLUMNS.index(column)]
    for text in accepted:
        assert str(parse_row(with_value(column.name, text))[column.name]) == text
    if column.kind == NUMERIC:
        assert column.minimum is not None and column.maximum is not None
        assert {str(column.minimum - 1), str(column.maximum + 1), "-0", "+1"}.isdisjoint(accepted)
        assert len(accepted) == column.maximum - column.minimum + 1
    elif column.pattern is None:
        assert accepted == set(column.choices)
    else:
        assert set(SOIL_TYPES) <= accepted
        assert {"7745", "C774", "C77450", " C7745"}.isdisjoint(accepted)


def test_valid_rows_give_typed_values_back() -> None:
    row = validate_rows([GOOD]).valid[0]
    assert row.values == parse_row(GOOD)
    assert ValidRow.of_values(row.values.values()) == row
