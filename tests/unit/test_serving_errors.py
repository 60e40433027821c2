"""Error items are bounded and always valid JSON, whatever the input they describe."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ancora.serving.errors import MAX_REPORTED_ERRORS, PREVIEW_CHARS, preview, reported_errors, short_repr


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
        (12.5, 12.5),
        (10**4000, "<a whole number of 13288 bits>"),
        (b"C72\xff\xfe", "C72\ufffd\ufffd"),
        ("x" * 10_000, "x" * PREVIEW_CHARS + "…"),
        ({"a": [1, 2], "b": {"c": 1}}, {"a": "[…]", "b": "{…}"}),
        (list(range(1000)), [*range(13), "… 987 more"]),
        (ValueError("bad"), "bad"),
        (None, None),
        (True, True),
    ],
)
def test_a_preview_is_short_and_json_safe(value: Any, shown: Any) -> None:
    assert preview(value) == shown
    json.dumps(preview(value), allow_nan=False)


def test_a_long_value_in_a_message_is_cut() -> None:
    assert short_repr("9" * 1_000_000) == repr("9" * PREVIEW_CHARS + "…")


def test_reported_errors_are_capped_and_count_the_rest() -> None:
    errors = [
        {"type": "missing", "loc": ("body", index, "Elevation"), "msg": "Field required", "input": {}}
        for index in range(500)
    ]
    reported = reported_errors(errors)
    assert len(reported) == MAX_REPORTED_ERRORS + 1
    assert reported[1] == {**errors[1], "loc": ["body", 1, "Elevation"]}
    assert reported[-1]["type"] == "too_many_errors"
    assert reported[-1]["msg"].startswith("at least 450 more error(s)")
    json.dumps(reported, allow_nan=False)
