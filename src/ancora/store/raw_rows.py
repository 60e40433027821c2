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

RAW_ROW_COLUMNS = ("group_number", "batch_number", "content_hash", *COLUMN_NAMES, "collected_at", "run_id")
LOOKUP_CHUNK = 5000
"""Hashes per IN (...) lookup: answered from the unique index, bounded statement size."""
QUARANTINE_COLUMNS = (
    "group_number",
    "batch_number",
    "content_hash",
    "raw",
    "reason",
    "collected_at",
    "run_id",
)


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
        """Store new rows of one response in one transaction; rows seen before are counted, not stored."""
        when = collected_at or datetime.now(UTC)
        unique_valid = {row.content_hash: row for row in valid}
        unique_quarantined = {row.content_hash: row for row in quarantined}
        with self.engine.begin() as connection:
            known = self._known_hashes(connection, raw_rows, group_number, batch_number, unique_valid)
            known_bad = self._known_hashes(
                connection, quarantined_rows, group_number, batch_number, unique_quarantined
            )
            new_rows = [
                (group_number, batch_number, digest, *row.values.values(), when, run_id)
                for digest, row in unique_valid.items()
                if digest not in known
            ]
            new_bad = [
                (
                    group_number,
                    batch_number,
                    digest,
                    json.dumps(row.raw, default=str),
                    row.reason,
                    when,
                    run_id,
                )
                for digest, row in unique_quarantined.items()
                if digest not in known_bad
            ]
            bulk_insert(connection, raw_rows, RAW_ROW_COLUMNS, new_rows)
            bulk_insert(connection, quarantined_rows, QUARANTINE_COLUMNS, new_bad)
        return BatchWrite(
            inserted=len(new_rows),
            duplicates=len(valid) - len(new_rows),
            quarantined=len(new_bad),
            quarantine_duplicates=len(quarantined) - len(new_bad),
        )

    def _known_hashes(
        self, connection: Any, table: Table, group_number: int, batch_number: int, candidates: dict[str, Any]
    ) -> set[str]:
        if not candidates:
            return set()
        known: set[str] = set()
        digests = list(candidates)
        for start in range(0, len(digests), LOOKUP_CHUNK):
            query = select(table.c.content_hash).where(
                table.c.group_number == group_number,
                table.c.batch_number == batch_number,
                table.c.content_hash.in_(digests[start : start + LOOKUP_CHUNK]),
            )
            known.update(digest for (digest,) in connection.execute(query))
        return known

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
