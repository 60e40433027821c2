"""Ingest throughput: validate and store 100,000 rows with dedup, into MariaDB and into SQLite.

Rows come from the real covertype sample, as the data API sends them (every value a string), in
responses of 2,000 rows. A second pass sends the same rows again to time the dedup path. Each
database is measured several times on a fresh store; the median is the figure, all runs are kept.

    uv run python -m benchmarks.ingest --mysql-url mysql+pymysql://root@127.0.0.1:3306
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ancora.locations import COVERTYPE_CSV, shipped_dataset
from ancora.store import RawRowStore, open_raw_store
from ancora.validation import validate_rows
from benchmarks.machine import describe_machine
from tests.support.databases import throwaway_mariadb
from tests.support.repo import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"
RESPONSE_ROWS = 2000


def api_rows(csv_path: Path) -> list[list[str]]:
    with csv_path.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        return [row for row in reader]


def responses(rows: list[list[str]], total: int) -> Iterator[tuple[int, list[list[str]]]]:
    """(batch number, rows) pairs adding up to `total` distinct rows: the sample repeated across batches."""
    sent = 0
    batch = 1
    while sent < total:
        for start in range(0, len(rows), RESPONSE_ROWS):
            chunk = rows[start : start + RESPONSE_ROWS][: total - sent]
            if not chunk:
                return
            yield batch, chunk
            sent += len(chunk)
        batch += 1


def ingest(store: RawRowStore, rows: list[list[str]], total: int) -> dict[str, float]:
    inserted = duplicates = 0
    started = time.perf_counter()
    for batch, chunk in responses(rows, total):
        report = validate_rows(chunk)
        written = store.write_batch(
            group_number=1,
            batch_number=batch,
            valid=report.valid,
            quarantined=report.quarantined,
            run_id="bench",
        )
        inserted += written.inserted
        duplicates += written.duplicates
    seconds = time.perf_counter() - started
    return {
        "rows": total,
        "seconds": round(seconds, 3),
        "rows_per_second": round(total / seconds),
        "inserted": inserted,
        "duplicates": duplicates,
    }


def measure(url: str, rows: list[list[str]], total: int) -> dict[str, Any]:
    store = open_raw_store(url)
    try:
        first = ingest(store, rows, total)
        again = ingest(store, rows, total)
        stored = store.stats().total_rows
    finally:
        store.engine.dispose()
    assert first["inserted"] == total == stored, (first, stored)
    assert again["inserted"] == 0 and again["duplicates"] == total, again
    return {"new_rows": first, "all_duplicates": again, "stored": stored}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "new_rows_per_second": statistics.median(r["new_rows"]["rows_per_second"] for r in runs),
        "all_duplicates_per_second": statistics.median(r["all_duplicates"]["rows_per_second"] for r in runs),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--csv", type=Path, default=shipped_dataset(COVERTYPE_CSV))
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--mysql-url", default="mysql+pymysql://root@127.0.0.1:3306")
    parser.add_argument("--repeat", type=int, default=5, help="runs per database; the median is reported")
    args = parser.parse_args()

    rows = api_rows(args.csv)
    results: dict[str, Any] = {
        "machine": describe_machine(),
        "rows": args.rows,
        "response_rows": RESPONSE_ROWS,
    }
    mariadb_runs, sqlite_runs = [], []
    for _ in range(args.repeat):
        with throwaway_mariadb(args.mysql_url, prefix="ancora_bench") as url:
            mariadb_runs.append(measure(url, rows, args.rows))
        with tempfile.TemporaryDirectory() as folder:
            sqlite_runs.append(measure(f"sqlite:///{folder}/raw.db", rows, args.rows))
    results["mariadb"] = summarize(mariadb_runs)
    results["sqlite"] = summarize(sqlite_runs)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
