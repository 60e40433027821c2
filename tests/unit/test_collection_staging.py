"""The collect DAG's tasks as functions, on a SQLite store: staging, retries, and the publish rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ancora.collection import (
    FETCHED,
    VALIDATED,
    FetchedBatch,
    NothingStaged,
    announcement,
    store_staged,
    validate_staged,
)
from ancora.store import RawRowStore, Staging, open_raw_store

ROW = ["2065", "97", "24", "242", "146", "268", "250", "198", "63", "552", "Cache", "C2702", "3"]
BAD = [*ROW[:6], "999", *ROW[7:]]


@pytest.fixture
def store(tmp_path: Path) -> RawRowStore:
    return open_raw_store(f"sqlite:///{tmp_path / 'raw.db'}")


def stage(store: RawRowStore, run_id: str, rows: list[list[str]], batch: int = 1) -> None:
    fetched = FetchedBatch(group_number=2, batch_number=batch, rows=rows)
    Staging(store.engine).put(run_id, FETCHED, fetched.to_dict())


def test_validate_and_store_hand_rows_on_through_staging_and_clean_up(store: RawRowStore) -> None:
    stage(store, "run-1", [ROW, BAD, ROW])
    counts = validate_staged(store, "run-1")
    assert counts == {"group": 2, "batch": 1, "valid": 2, "quarantined": 1, "exhausted": False}
    assert Staging(store.engine).stages("run-1") == [FETCHED, VALIDATED]

    result = store_staged(store, 2, "run-1")
    assert (result.received, result.inserted, result.duplicates, result.quarantined) == (3, 1, 1, 1)
    assert (result.run_inserted, result.run_new_contents) == (1, 1)
    assert Staging(store.engine).stages("run-1") == []
    assert store.run_totals("run-1").received == 3


def test_a_store_retry_after_a_commit_reports_what_the_run_stored(store: RawRowStore) -> None:
    stage(store, "run-1", [ROW])
    validate_staged(store, "run-1")
    first = store_staged(store, 2, "run-1")
    retried = store_staged(store, 2, "run-1")
    assert (retried.inserted, retried.run_inserted, retried.run_new_contents) == (0, 1, 1)
    assert retried.batch == first.batch == 1
    assert announcement(retried.to_dict())[0] == announcement(first.to_dict())[0]
    assert store.stats().total_rows == 1


def test_a_task_without_its_input_says_which_task_must_run_first(store: RawRowStore) -> None:
    with pytest.raises(NothingStaged, match="the fetch task must run first"):
        validate_staged(store, "run-x")
    with pytest.raises(NothingStaged, match="the fetch and validate tasks must run first"):
        store_staged(store, 2, "run-x")


def test_a_retried_stage_replaces_what_the_failed_attempt_left(store: RawRowStore) -> None:
    stage(store, "run-1", [ROW])
    stage(store, "run-1", [ROW, [str(2066), *ROW[1:]]])
    assert validate_staged(store, "run-1")["valid"] == 2


def test_staged_input_of_runs_that_died_is_purged_after_a_day(store: RawRowStore) -> None:
    staging = Staging(store.engine)
    stage(store, "old", [ROW])
    assert staging.purge_stale() == 0
    assert staging.purge_stale(now=datetime.now(UTC) + timedelta(days=1, minutes=1)) == 1
    assert staging.stages("old") == []


def result(**overrides: Any) -> dict[str, Any]:
    base = {"group": 2, "batch": 3, "exhausted": False, "run_inserted": 5, "run_new_contents": 2}
    return {**base, **overrides}


def test_the_event_announces_new_contents_the_run_stored() -> None:
    assert announcement(result()) == ({"group": 2, "batch": 3, "inserted": 5, "new_contents": 2}, "")
    extra, reason = announcement(result(run_new_contents=0))
    assert extra is None and "no new contents (5 rows stored" in reason
    extra, reason = announcement(result(exhausted=True))
    assert extra is None and "all batches" in reason
