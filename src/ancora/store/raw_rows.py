"""Write and read collected rows; every write is idempotent on (group, batch, content hash)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, case, delete, func, select

from ancora.schema import COLUMN_NAMES
from ancora.store.bulk import bulk_insert
from ancora.store.database import create_store_engine, upgrade_schema
from ancora.store.queries import first_copies
from ancora.store.tables import collection_log, collection_staging, quarantined_rows, raw_rows
from ancora.validation import QuarantinedRow, ValidRow

RAW_ROW_COLUMNS = ("content_hash", *COLUMN_NAMES)
QUARANTINE_COLUMNS = ("content_hash", "raw", "reason")
LOOKUP_CHUNK = 1000
"""Content hashes per ``IN (...)`` lookup."""
HEX_LIST = re.compile(r"'[0-9a-f]{32}'(?:,'[0-9a-f]{32}')*")


@dataclass(frozen=True)
class BatchWrite:
    inserted: int
    duplicates: int
    quarantined: int
    quarantine_duplicates: int
    new_contents: int = 0
    """Inserted rows whose content the group had never stored, in any batch."""


@dataclass(frozen=True)
class RunTotals:
    """What one collection run stored over all its attempts, from the collection log."""

    cycles: int = 0
    inserted: int = 0
    new_contents: int = 0
    duplicates: int = 0
    quarantined: int = 0
    received: int = 0
    batch: int | None = None
    exhausted: bool = False


@dataclass(frozen=True)
class StoreStats:
    rows_per_batch: dict[int, int] = field(default_factory=dict)
    total_rows: int = 0
    distinct_contents: int = 0
    new_contents_per_batch: dict[int, int] = field(default_factory=dict)
    quarantined_rows: int = 0
    quarantined_per_batch: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_per_batch": {str(k): v for k, v in sorted(self.rows_per_batch.items())},
            "total_rows": self.total_rows,
            "distinct_contents": self.distinct_contents,
            "new_contents_per_batch": {str(k): v for k, v in sorted(self.new_contents_per_batch.items())},
            "quarantined_rows": self.quarantined_rows,
            "quarantined_per_batch": {str(k): v for k, v in sorted(self.quarantined_per_batch.items())},
        }


class RawRowStore:
    """The raw rows of one data API group, their quarantine, and a log of collection cycles."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write_batch(
        self,
        *,
        group_number: int,
        batch_number: int,
        valid: Sequence[ValidRow],
        quarantined: Sequence[QuarantinedRow],
        run_id: str,
        collected_at: datetime | None = None,
    ) -> BatchWrite:
        """Store new rows of one response in one transaction; rows seen before are counted, not stored."""
        with self.engine.begin() as connection:
            return self._write(
                connection, group_number, batch_number, valid, quarantined, run_id, collected_at
            )

    def store_response(
        self,
        *,
        group_number: int,
        batch_number: int,
        valid: Sequence[ValidRow],
        quarantined: Sequence[QuarantinedRow],
        run_id: str,
        received: int,
        clear_staging: bool = False,
    ) -> BatchWrite:
        """Rows, quarantine, the cycle's log entry and (for a DAG run) its staged input, in one transaction.

        So an attempt that dies finds either nothing done or everything done on its retry, and the log
        says exactly what each run stored.
        """
        with self.engine.begin() as connection:
            written = self._write(connection, group_number, batch_number, valid, quarantined, run_id, None)
            self._log(
                connection,
                run_id=run_id,
                group_number=group_number,
                batch_number=batch_number,
                outcome="stored",
                received=received,
                inserted=written.inserted,
                duplicates=written.duplicates,
                quarantined=len(quarantined),
                new_contents=written.new_contents,
            )
            if clear_staging:
                _clear_staging(connection, run_id)
        return written

    def _write(
        self,
        connection: Connection,
        group_number: int,
        batch_number: int,
        valid: Sequence[ValidRow],
        quarantined: Sequence[QuarantinedRow],
        run_id: str,
        collected_at: datetime | None,
    ) -> BatchWrite:
        """The unique key decides what is new and the loader counts what it inserted, so there is no
        lookup before the insert for that; one lookup by content tells which contents are new."""
        batch = {
            "group_number": group_number,
            "batch_number": batch_number,
            "collected_at": collected_at or datetime.now(UTC),
            "run_id": run_id,
        }
        unique_valid = {row.content_hash: row.cells for row in valid}
        unique_quarantined = {row.content_hash: row for row in quarantined}
        new_rows = [(digest, *cells) for digest, cells in unique_valid.items()]
        new_bad = [
            (digest, json.dumps(bad.raw, default=str), bad.reason)
            for digest, bad in unique_quarantined.items()
        ]
        known = _count_stored_contents(connection, group_number, list(unique_valid)) if unique_valid else 0
        inserted = bulk_insert(connection, raw_rows, RAW_ROW_COLUMNS, new_rows, batch)
        inserted_bad = bulk_insert(connection, quarantined_rows, QUARANTINE_COLUMNS, new_bad, batch)
        return BatchWrite(
            inserted=inserted,
            duplicates=len(valid) - inserted,
            quarantined=inserted_bad,
            quarantine_duplicates=len(quarantined) - inserted_bad,
            new_contents=len(unique_valid) - known,
        )

    def log_collection(
        self,
        *,
        run_id: str,
        group_number: int,
        batch_number: int | None,
        outcome: str,
        received: int,
        inserted: int,
        duplicates: int,
        quarantined: int,
        new_contents: int | None = None,
        clear_staging: bool = False,
    ) -> None:
        with self.engine.begin() as connection:
            self._log(
                connection,
                run_id=run_id,
                group_number=group_number,
                batch_number=batch_number,
                outcome=outcome,
                received=received,
                inserted=inserted,
                duplicates=duplicates,
                quarantined=quarantined,
                new_contents=new_contents,
            )
            if clear_staging:
                _clear_staging(connection, run_id)

    @staticmethod
    def _log(connection: Connection, **values: Any) -> None:
        connection.execute(collection_log.insert().values(**values, collected_at=datetime.now(UTC)))

    def run_totals(self, run_id: str) -> RunTotals:
        """What a run stored over all its attempts: the log entries written with its rows."""
        query = select(
            func.count(),
            func.coalesce(func.sum(collection_log.c.inserted), 0),
            func.coalesce(func.sum(collection_log.c.new_contents), 0),
            func.coalesce(func.sum(collection_log.c.duplicates), 0),
            func.coalesce(func.sum(collection_log.c.quarantined), 0),
            func.coalesce(func.sum(collection_log.c.received), 0),
            func.max(collection_log.c.batch_number),
            func.coalesce(func.sum(case((collection_log.c.outcome == "exhausted", 1), else_=0)), 0),
        ).where(collection_log.c.run_id == run_id)
        with self.engine.connect() as connection:
            cycles, inserted, new, duplicates, quarantined, received, batch, exhausted = connection.execute(
                query
            ).one()
        return RunTotals(
            cycles=int(cycles),
            inserted=int(inserted),
            new_contents=int(new),
            duplicates=int(duplicates),
            quarantined=int(quarantined),
            received=int(received),
            batch=None if batch is None else int(batch),
            exhausted=int(exhausted) > 0,
        )

    def stats(self, group_number: int | None = None) -> StoreStats:
        def per_batch(table: Table) -> dict[int, int]:
            query = select(table.c.batch_number, func.count()).group_by(table.c.batch_number)
            if group_number is not None:
                query = query.where(table.c.group_number == group_number)
            with self.engine.connect() as connection:
                return {int(batch): int(count) for batch, count in connection.execute(query)}

        rows = per_batch(raw_rows)
        bad = per_batch(quarantined_rows)
        first = (
            select(func.min(raw_rows.c.id)).group_by(raw_rows.c.group_number, raw_rows.c.content_hash)
            if group_number is None
            else first_copies(group_number)
        )
        new_per_batch = (
            select(raw_rows.c.batch_number, func.count())
            .where(raw_rows.c.id.in_(first))
            .group_by(raw_rows.c.batch_number)
        )
        with self.engine.connect() as connection:
            new = {int(batch): int(count) for batch, count in connection.execute(new_per_batch)}
        return StoreStats(
            rows_per_batch=rows,
            total_rows=sum(rows.values()),
            distinct_contents=sum(new.values()),
            new_contents_per_batch=new,
            quarantined_rows=sum(bad.values()),
            quarantined_per_batch=bad,
        )

    def content_hashes(self, group_number: int, batch_numbers: Iterable[int] | None = None) -> set[str]:
        query = select(raw_rows.c.content_hash).where(raw_rows.c.group_number == group_number)
        if batch_numbers is not None:
            query = query.where(raw_rows.c.batch_number.in_(list(batch_numbers)))
        with self.engine.connect() as connection:
            return {digest for (digest,) in connection.execute(query)}


def _clear_staging(connection: Connection, run_id: str) -> None:
    """The run's staged input goes in the transaction that stores it (see ancora.store.staging)."""
    connection.execute(delete(collection_staging).where(collection_staging.c.run_id == run_id))


def _count_stored_contents(connection: Connection, group_number: int, hashes: Sequence[str]) -> int:
    """How many of `hashes` (distinct) the group has stored already, in any batch.

    One ``COUNT`` per 1,000 hashes, written as literals: the hashes are our own hex digests (checked
    below), and binding 1,000 parameters or reading back the matching hashes cost more in Python than
    the lookup costs the database (measured: 2.6 s of a 7.3 s ingest of 200,000 rows before).
    """
    known = 0
    for start in range(0, len(hashes), LOOKUP_CHUNK):
        listed = ",".join(f"'{digest}'" for digest in hashes[start : start + LOOKUP_CHUNK])
        if not HEX_LIST.fullmatch(listed):
            raise ValueError("content hashes must be 32 lowercase hex digits")
        known += int(
            connection.exec_driver_sql(
                "SELECT COUNT(DISTINCT content_hash) FROM raw_rows "  # noqa: S608 - checked hex literals
                f"WHERE group_number = {int(group_number)} AND content_hash IN ({listed})"
            ).scalar_one()
        )
    return known


def open_raw_store(url: str) -> RawRowStore:
    """A store at its newest schema: a fresh SQLite file or an empty MySQL database just works."""
    engine = create_store_engine(url)
    upgrade_schema(engine)
    return RawRowStore(engine)
