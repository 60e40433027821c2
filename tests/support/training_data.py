"""Fill a raw store with rows of the shared covertype CSV, batch by batch, through the real write path."""

from __future__ import annotations

import csv
from pathlib import Path

from ancora.store import RawRowStore
from ancora.validation import validate_rows


def read_csv_rows(path: Path, limit: int | None = None, skip: int = 0) -> list[list[str]]:
    """Rows as the data API sends them: lists of strings in the CSV's column order, label last."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        rows = [row for index, row in enumerate(reader) if index >= skip]
    return rows[:limit] if limit is not None else rows


def store_rows(
    store: RawRowStore, rows: list[list[str]], *, group: int = 1, first_batch: int = 1, batches: int = 1
) -> int:
    """Split `rows` into `batches` consecutive batches and store them; returns the rows inserted."""
    size = -(-len(rows) // batches)
    inserted = 0
    for offset in range(batches):
        report = validate_rows(rows[offset * size : (offset + 1) * size])
        written = store.write_batch(
            group_number=group,
            batch_number=first_batch + offset,
            valid=report.valid,
            quarantined=report.quarantined,
            run_id="test-fill",
        )
        inserted += written.inserted
    return inserted
