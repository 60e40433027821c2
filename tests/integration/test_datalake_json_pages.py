"""MySQL/MariaDB pages read as one JSON document give what PyMySQL gives row by row, on a real MariaDB.

The document is only a faster transport: for every value a datalake may hold (whole and fractional
doubles, NULLs, strings with quotes, backslashes, newlines, commas and emoji, keys ordered by a
case-insensitive collation) the dispatch must see the same rows in the same order, and a page the
document cannot carry (cut by ``group_concat_max_len``, bytes that are not UTF-8) is read row by row.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from ancora.dispatch.datalake import Datalake, DatalakeLayout, PendingBatch
from ancora.schema import FEATURE_NAMES, WILDERNESS_AREAS
from ancora.serving.rows import EXAMPLE_ROW, check_columns

pytestmark = pytest.mark.integration

LAYOUT = DatalakeLayout(
    table="lake",
    schema=None,
    key="row_key",
    features={name: name for name in FEATURE_NAMES},
    prediction="prediction",
    marker="dispatch_id",
)

HOSTILE_TEXT = ['Ra"wah', "Ne\\ota", "Com,manche\nCache", "Cache 🌲", "", "Rawah"]


def create_lake(url: str, wilderness_type: str = "VARCHAR(64)") -> sa.Engine:
    engine = sa.create_engine(url)
    numbers = ", ".join(
        f"`{name}` {'DOUBLE' if name == 'Elevation' else 'INT'} NULL"
        for name in FEATURE_NAMES
        if name not in ("Wilderness_Area", "Soil_Type")
    )
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"CREATE TABLE lake (row_key VARCHAR(64) PRIMARY KEY, {numbers}, "
            f"Wilderness_Area {wilderness_type} NULL, Soil_Type VARCHAR(16) NULL, "
            "prediction INT NULL, dispatch_id VARCHAR(64) NULL) CHARACTER SET utf8mb4"
        )
    return engine


def insert(engine: sa.Engine, rows: list[dict[str, Any]]) -> None:
    table = sa.Table("lake", sa.MetaData(), autoload_with=engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), rows)


def varied_rows() -> list[dict[str, Any]]:
    """Keys whose order differs between the collation and Python (``b`` < ``C`` < ``d``), values of
    every awkward kind, and rows whose checks fail (NULL, fractional, unknown category)."""
    rows = []
    for number, key in enumerate(["b", "C", "d", "it's", 'quote"d', "back\\slash", "émoji 🌲", "a,b", "z"]):
        row: dict[str, Any] = {**EXAMPLE_ROW, "row_key": key}
        row["Wilderness_Area"] = HOSTILE_TEXT[number % len(HOSTILE_TEXT)]
        row["Elevation"] = 2596.5 if number == 2 else float(2596 + number)
        row["Aspect"] = None if number == 4 else number
        rows.append(row)
    return rows


def read_all(lake: Datalake, page_rows: int) -> list[PendingBatch]:
    pages, after = [], None
    while True:
        page = lake.read_pending(after, page_rows)
        if not page.keys:
            return pages
        pages.append(page)
        after = page.keys[-1]


def row_by_row(url: str) -> Datalake:
    """The reference: the same table through its own engine, read the way every other database is."""
    lake = Datalake(sa.create_engine(url), LAYOUT)
    lake.json_pages = False
    return lake


def recording(lake: Datalake, seen: list[str]) -> Datalake:
    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    sa.event.listen(lake.engine, "before_cursor_execute", before)
    return lake


def row_reads(seen: list[str]) -> list[str]:
    return [s for s in seen if s.startswith("SELECT lake.row_key") and "GROUP_CONCAT" not in s]


def json_reads(seen: list[str]) -> list[str]:
    return [s for s in seen if "GROUP_CONCAT" in s]


def test_json_pages_give_the_rows_values_and_order_the_driver_gives(mariadb_url: str) -> None:
    engine = create_lake(mariadb_url)
    insert(engine, varied_rows())
    seen: list[str] = []
    fast = recording(Datalake(engine, LAYOUT), seen)
    plain = row_by_row(mariadb_url)
    assert fast.json_pages

    for page_rows in (4, 100):
        fast_pages, plain_pages = read_all(fast, page_rows), read_all(plain, page_rows)
        assert [p.keys for p in fast_pages] == [p.keys for p in plain_pages]
        assert [p.columns for p in fast_pages] == [p.columns for p in plain_pages]
    collation_order = ["a,b", "b", "back\\slash", "C", "d", "émoji 🌲", "it's", 'quote"d', "z"]
    assert [key for page in plain_pages for key in page.keys] == collation_order
    assert json_reads(seen) and not row_reads(seen), "every page came as one document"

    fast_checked, plain_checked = check_columns(fast_pages[0].columns), check_columns(plain_pages[0].columns)
    assert fast_checked.errors == plain_checked.errors
    assert fast_checked.positions == plain_checked.positions
    assert fast_checked.frame.equals(plain_checked.frame)
    invalid = {
        row["row_key"]
        for row in varied_rows()
        if row["Elevation"] % 1 or row["Aspect"] is None or row["Wilderness_Area"] not in WILDERNESS_AREAS
    }
    assert {fast_pages[0].keys[position] for position in fast_checked.errors} == invalid


def test_marked_rows_come_back_with_their_predictions(mariadb_url: str) -> None:
    engine = create_lake(mariadb_url)
    rows = varied_rows()
    insert(engine, rows)
    fast, plain = Datalake(engine, LAYOUT), row_by_row(mariadb_url)
    batch = fast.read_pending(None, 100)
    fast.write_back("dispatch-1", {3: batch.keys[:5]}, batch.keys[5:])
    marked, expected = fast.read_marked("dispatch-1", None, 100), plain.read_marked("dispatch-1", None, 100)
    assert marked.keys == expected.keys and marked.columns == expected.columns
    assert marked.predictions == expected.predictions == [3] * 5 + [None] * (len(rows) - 5)


def test_a_page_longer_than_the_session_allows_is_read_row_by_row(mariadb_url: str) -> None:
    engine = create_lake(mariadb_url)
    insert(engine, varied_rows())
    seen: list[str] = []
    cut = recording(Datalake(engine, LAYOUT, json_page_max_bytes=200), seen)
    plain = row_by_row(mariadb_url)

    pages = read_all(cut, 100)

    assert [p.columns for p in pages] == [p.columns for p in read_all(plain, 100)]
    assert len(json_reads(seen)) == 2 and len(row_reads(seen)) == 1, seen


def test_bytes_that_are_not_utf8_are_read_row_by_row(mariadb_url: str) -> None:
    engine = create_lake(mariadb_url, wilderness_type="VARBINARY(64)")
    insert(engine, [{**EXAMPLE_ROW, "row_key": "k1", "Wilderness_Area": b"\xffRawah"}])
    seen: list[str] = []
    lake = recording(Datalake(engine, LAYOUT), seen)

    page = lake.read_pending(None, 10)

    assert page.columns["Wilderness_Area"] == [b"\xffRawah"]
    assert row_reads(seen), "the document was not trusted"
    assert "Wilderness_Area" in check_columns(page.columns).errors[0]
