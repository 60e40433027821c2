"""The raw-data store on the real MariaDB of this machine and on SQLite, through Alembic's schema.

Each test runs against every loader: MariaDB's LOAD DATA LOCAL INFILE, SQLite's executemany, and the
SQLAlchemy INSERT fallback on MariaDB without local_infile (as on a stock MySQL 8) and on PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from ancora.store import RawRowStore, open_raw_store
from ancora.store.bulk import local_infile_enabled
from ancora.store.database import alembic_config
from ancora.store.raw_rows import BatchWrite
from ancora.store.tables import quarantined_rows, raw_rows
from ancora.validation import validate_rows

ROW = ["2065", "97", "24", "242", "146", "268", "250", "198", "63", "552", "Cache", "C2702", "3"]


def variant(elevation: int) -> list[str]:
    return [str(elevation), *ROW[1:]]


@pytest.fixture(params=["mariadb", "sqlite", "mariadb-insert", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> RawRowStore:
    if request.param == "sqlite":
        return open_raw_store(f"sqlite:///{tmp_path / 'raw.db'}")
    if request.param == "postgresql":
        return open_raw_store(request.getfixturevalue("postgres_url"))
    url = request.getfixturevalue("mariadb_url")
    opened = open_raw_store(url)
    if request.param == "mariadb":
        with opened.engine.connect() as connection:
            assert local_infile_enabled(connection)
        return opened
    without_local_infile = RawRowStore(sa.create_engine(url))
    with without_local_infile.engine.connect() as connection:
        assert not local_infile_enabled(connection)
    return without_local_infile


def test_schema_has_typed_columns_and_the_dedup_key(store: RawRowStore) -> None:
    inspector = sa.inspect(store.engine)
    columns = {c["name"]: c["type"] for c in inspector.get_columns("raw_rows")}
    assert isinstance(columns["Elevation"], sa.Integer)
    assert isinstance(columns["Soil_Type"], sa.String)
    assert isinstance(columns["collected_at"], sa.DateTime)
    uniques = [u["column_names"] for u in inspector.get_unique_constraints("raw_rows")]
    assert ["group_number", "content_hash", "batch_number"] in uniques
    head = ScriptDirectory.from_config(alembic_config(str(store.engine.url))).get_current_head()
    with store.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head


def test_the_migrations_build_exactly_the_declared_tables(store: RawRowStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from ancora.store.tables import metadata

    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_overlapping_samples_and_retries_store_each_row_once(store: RawRowStore) -> None:
    first = validate_rows([variant(2000), variant(2001), variant(2002)])
    written = store.write_batch(
        group_number=1, batch_number=1, valid=first.valid, quarantined=first.quarantined, run_id="r1"
    )
    assert (written.inserted, written.duplicates) == (3, 0)

    overlap = validate_rows([variant(2002), variant(2003), variant(2003)])
    written = store.write_batch(
        group_number=1, batch_number=1, valid=overlap.valid, quarantined=overlap.quarantined, run_id="r2"
    )
    assert (written.inserted, written.duplicates) == (1, 2)

    retried = store.write_batch(
        group_number=1, batch_number=1, valid=overlap.valid, quarantined=overlap.quarantined, run_id="r2"
    )
    assert (retried.inserted, retried.duplicates) == (0, 3)

    stats = store.stats()
    assert stats.rows_per_batch == {1: 4}
    assert stats.total_rows == 4


def test_the_same_row_in_another_batch_or_group_is_kept(store: RawRowStore) -> None:
    report = validate_rows([ROW])
    for group, batch in [(1, 1), (1, 2), (2, 1)]:
        written = store.write_batch(
            group_number=group, batch_number=batch, valid=report.valid, quarantined=[], run_id="r"
        )
        assert written.inserted == 1
    assert store.stats().total_rows == 3
    assert store.stats(group_number=1).rows_per_batch == {1: 1, 2: 1}
    assert store.stats(group_number=1).distinct_contents == 1
    assert store.stats().distinct_contents == 2, "one content in each of two groups"


def test_rows_keep_batch_collection_time_and_run_id(store: RawRowStore) -> None:
    report = validate_rows([ROW])
    store.write_batch(
        group_number=4, batch_number=7, valid=report.valid, quarantined=[], run_id="scheduled__x"
    )
    with store.engine.connect() as connection:
        stored = connection.execute(sa.select(raw_rows)).one()._mapping
    assert stored["batch_number"] == 7
    assert stored["group_number"] == 4
    assert stored["run_id"] == "scheduled__x"
    assert stored["collected_at"] is not None
    assert stored["Elevation"] == 2065
    assert stored["Wilderness_Area"] == "Cache"


def test_quarantine_keeps_reason_and_raw_row_once(store: RawRowStore) -> None:
    bad = [*ROW[:6], "999", *ROW[7:]]
    report = validate_rows([ROW, bad])
    for _ in range(2):
        store.write_batch(
            group_number=1, batch_number=1, valid=report.valid, quarantined=report.quarantined, run_id="r"
        )
    with store.engine.connect() as connection:
        kept = connection.execute(sa.select(quarantined_rows)).all()
    assert len(kept) == 1
    assert kept[0].reason == "Hillshade_9am: 999 is above the maximum 255"
    assert json.loads(kept[0].raw) == bad
    stats = store.stats()
    assert (stats.total_rows, stats.quarantined_rows) == (1, 1)


def test_upgrading_twice_is_harmless(store: RawRowStore) -> None:
    again = open_raw_store(store.engine.url.render_as_string(hide_password=False))
    assert again.stats().total_rows == 0


def test_text_that_needs_escaping_is_stored_exactly(store: RawRowStore) -> None:
    odd = ["tab\there", "line\nbreak", "back\\slash \\N", 'quote " and \r', "\u00e9t\u00e9", *ROW[5:]]
    report = validate_rows([ROW, odd])
    written = store.write_batch(
        group_number=1,
        batch_number=1,
        valid=report.valid,
        quarantined=report.quarantined,
        run_id="run\twith\\odd\ncharacters",
    )
    assert (written.inserted, written.quarantined) == (1, 1)
    with store.engine.connect() as connection:
        kept = connection.execute(sa.select(quarantined_rows)).one()
        stored_run = connection.execute(sa.select(raw_rows.c.run_id)).scalar_one()
    assert json.loads(kept.raw) == odd
    assert kept.run_id == stored_run == "run\twith\\odd\ncharacters"


def test_counts_come_from_the_database_across_many_rows(store: RawRowStore) -> None:
    rows = [variant(elevation) for elevation in range(1000, 4000)]
    first = validate_rows(rows[:2000])
    second = validate_rows(rows[1000:])
    assert store.write_batch(
        group_number=1, batch_number=1, valid=first.valid, quarantined=[], run_id="r1"
    ) == BatchWrite(inserted=2000, duplicates=0, quarantined=0, quarantine_duplicates=0, new_contents=2000)
    assert store.write_batch(
        group_number=1, batch_number=1, valid=second.valid, quarantined=[], run_id="r2"
    ) == BatchWrite(inserted=1000, duplicates=1000, quarantined=0, quarantine_duplicates=0, new_contents=1000)
    assert store.write_batch(
        group_number=1, batch_number=2, valid=second.valid, quarantined=[], run_id="r3"
    ) == BatchWrite(inserted=2000, duplicates=0, quarantined=0, quarantine_duplicates=0, new_contents=0)
    assert store.stats().total_rows == 5000
    assert store.stats().distinct_contents == 3000
    assert store.content_hashes(1) == {row.content_hash for row in (*first.valid, *second.valid)}


def test_stats_count_distinct_contents_and_where_each_first_arrived(store: RawRowStore) -> None:
    """The reference server repeats a group's slice in every batch: stored rows grow, contents do not."""
    batches = {1: [2000, 2001, 2002], 2: [2001, 2002, 2003], 3: [2000, 2003]}
    for batch, elevations in batches.items():
        report = validate_rows([variant(e) for e in elevations])
        written = store.write_batch(
            group_number=1, batch_number=batch, valid=report.valid, quarantined=[], run_id=f"r{batch}"
        )
        assert written.new_contents == {1: 3, 2: 1, 3: 0}[batch]
    stats = store.stats(group_number=1)
    assert stats.rows_per_batch == {1: 3, 2: 3, 3: 2}
    assert (stats.total_rows, stats.distinct_contents) == (8, 4)
    assert stats.new_contents_per_batch == {1: 3, 2: 1}
    assert stats.as_dict()["distinct_contents"] == 4


def test_a_response_and_its_log_entry_are_stored_together_and_a_run_sums_its_attempts(
    store: RawRowStore,
) -> None:
    report = validate_rows([variant(2000), variant(2001), [*ROW[:6], "999", *ROW[7:]]])
    written = store.store_response(
        group_number=1,
        batch_number=1,
        valid=report.valid,
        quarantined=report.quarantined,
        run_id="r",
        received=3,
    )
    assert (written.inserted, written.new_contents, written.quarantined) == (2, 2, 1)
    again = validate_rows([variant(2001), variant(2002)])
    store.store_response(
        group_number=1, batch_number=2, valid=again.valid, quarantined=[], run_id="r", received=2
    )
    totals = store.run_totals("r")
    assert (totals.cycles, totals.inserted, totals.new_contents, totals.quarantined) == (2, 4, 3, 1)
    assert (totals.received, totals.batch, totals.exhausted) == (5, 2, False)
    assert store.run_totals("never").cycles == 0
