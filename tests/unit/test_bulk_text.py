"""The text handed to LOAD DATA: joined as it is only when nothing in it needs an escape."""

from __future__ import annotations

import pytest

from ancora.store.bulk import plain_tsv


def test_plain_rows_are_joined_with_tabs_and_newlines() -> None:
    rows = [("a1", "2065", "Cache"), ("b2", "-3", "C7745")]
    assert plain_tsv(rows, 3) == "a1\t2065\tCache\nb2\t-3\tC7745\n"


@pytest.mark.parametrize(
    "cell",
    ["tab\there", "line\nbreak", "back\\slash", "\\N", "carriage\rreturn", "nul\0byte", 7, None],
)
def test_anything_that_needs_an_escape_or_is_not_text_goes_to_the_csv_writer(cell: object) -> None:
    assert plain_tsv([("a1", "2065", "Cache"), ("b2", cell, "C7745")], 3) is None
