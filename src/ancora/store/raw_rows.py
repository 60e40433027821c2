"""Write and read collected rows; every write is idempotent on (group, batch, content hash)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, func, select

from ancora.schema import COLUMN_NAMES
from ancora.store.bulk import bulk_insert
from ancora.store.database import create_store_engine, upgrade_schema
from ancora.store.tables import collection_log, quarantined_rows, raw_rows
from ancora.validation import QuarantinedRow, ValidRow

RAW_ROW_COLUMNS = ("content_hash", *COLUMN_NAMES)
QUARANTINE_COLUMNS = ("content_hash", "raw", "reason")


@dataclass(frozen=True)
class BatchWrite:
    inserted: int
    duplicates: int
    quarantined: int
    quarantine_duplicates: int


@dataclass(frozen=True)
class StoreStats:
    rows_per_batch: dict[int, int] = field(default_factory=dict)
    total_rows: int = 0
    quarantined_rows: int = 0
    quarantined_per_batch: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_per_batch": {str(k): v for k, v in sorted(self.rows_per_batch.items())},
            "total_rows": self.total_rows,
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
        """Store new rows of one response in one transaction; rows seen before are counted, not stored.

        The unique key decides what is new and the loader counts what it inserted, so there is no
        lookup first: most responses bring mostly new rows, and the index check is paid once.
        """
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
        with self.engine.begin() as connection:
            inserted = bulk_insert(connection, raw_rows, RAW_ROW_COLUMNS, new_rows, batch)
            inserted_bad = bulk_insert(connection, quarantined_rows, QUARANTINE_COLUMNS, new_bad, batch)
        return BatchWrite(
            inserted=inserted,
            duplicates=len(valid) - inserted,
            quarantined=inserted_bad,
            quarantine_duplicates=len(quarantined) - inserted_bad,
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
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                collection_log.insert().values(
                    run_id=run_id,
                    group_number=group_number,
                    batch_number=batch_number,
                    outcome=outcome,
                    received=received,
                    inserted=inserted,
                    duplicates=duplicates,
                    quarantined=quarantined,
                    collected_at=datetime.now(UTC),
                )
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
        return StoreStats(
            rows_per_batch=rows,
            total_rows=sum(rows.values()),
            quarantined_rows=sum(bad.values()),
            quarantined_per_batch=bad,
        )

    def content_hashes(self, group_number: int, batch_numbers: Iterable[int] | None = None) -> set[str]:
        query = select(raw_rows.c.content_hash).where(raw_rows.c.group_number == group_number)
        if batch_numbers is not None:
            query = query.where(raw_rows.c.batch_number.in_(list(batch_numbers)))
        with self.engine.connect() as connection:
            return {digest for (digest,) in connection.execute(query)}


def open_raw_store(url: str) -> RawRowStore:
    """A store at its newest schema: a fresh SQLite file or an empty MySQL database just works."""
    engine = create_store_engine(url)
    upgrade_schema(engine)
    return RawRowStore(engine)
