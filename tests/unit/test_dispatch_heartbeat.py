"""A dispatch that dies without recording its end is recognised by the next one and marked failed,
with the rows it had committed to the datalake but not recorded (SQLite here; the real SIGKILL of a
real dispatch between its two commits is in tests/integration/test_dispatch.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ancora.config import Settings
from ancora.dispatch.datalake import Datalake, open_datalake
from ancora.dispatch.events import (
    Counters,
    EventsStore,
    Owner,
    RowPrediction,
    create_events_engine,
    open_events_store,
    upgrade_events_schema,
)
from ancora.dispatch.run import heartbeat, new_dispatch_id, recover_dead_dispatches, this_process
from ancora.dispatch.seed import seed_datalake
from ancora.dispatch.tables import VERSION_TABLE, dispatches, metadata

TABLE = "covertype_observations"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path,
        datalake_url=f"sqlite:///{tmp_path / 'lake.db'}",
        dispatch_events_db_url=f"sqlite:///{tmp_path / 'events.db'}",
        dispatch_heartbeat_seconds=1,
        dispatch_stale_after_seconds=60,
    )


@pytest.fixture
def store(settings: Settings) -> EventsStore:
    return open_events_store(settings.dispatch_events_db_url)


@pytest.fixture
def lake(settings: Settings) -> Datalake:
    datalake = open_datalake(settings)
    seed_datalake(datalake, rows=30, invalid_rows=4, seed=1)
    return datalake


def gone_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def start(store: EventsStore, owner: Owner, silent_for: timedelta = timedelta(0)) -> str:
    dispatch_id = new_dispatch_id()
    store.start(dispatch_id, None, TABLE, "test", owner)
    with store.engine.begin() as connection:
        connection.execute(
            dispatches.update()
            .where(dispatches.c.id == dispatch_id)
            .values(heartbeat_at=datetime.now(UTC) - silent_for)
        )
    return dispatch_id


def state_of(store: EventsStore, dispatch_id: str) -> tuple[str, str | None]:
    detail = store.get(dispatch_id)
    assert detail is not None
    return detail.dispatch.state, detail.dispatch.error


def test_the_migrations_build_exactly_the_declared_tables(store: EventsStore) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == []


def test_revision_0002_keeps_the_dispatches_recorded_before_it(tmp_path: Path) -> None:
    engine = create_events_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade_events_schema(engine, "0001")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO dispatches (id, started_at, datalake_table, rows_read, rows_predicted, "
                "rows_invalid, rows_written, state) VALUES ('old', '2026-11-23 11:00:00', 't', 5, 5, 0, 5, "
                "'succeeded')"
            )
        )
    upgrade_events_schema(engine)
    detail = EventsStore(engine).get("old")
    assert detail is not None and detail.dispatch.rows_written == 5 and detail.dispatch.heartbeat_at is None


def test_a_dispatch_whose_process_is_gone_is_failed_at_once(store: EventsStore, settings: Settings) -> None:
    dead = start(store, Owner(socket.gethostname(), gone_pid(), None))
    alive = start(store, this_process())
    assert recover_dead_dispatches(store, None, settings) == [dead]
    state, error = state_of(store, dead)
    assert state == "failed"
    assert error is not None and error.startswith("dispatch died: its process (pid ")
    assert state_of(store, alive) == ("running", None)


def test_a_dispatch_elsewhere_is_failed_only_once_its_heartbeat_is_stale(
    store: EventsStore, settings: Settings
) -> None:
    recent = start(store, Owner("another-host", 1234, 99), silent_for=timedelta(seconds=30))
    stale = start(store, Owner("another-host", 1234, 99), silent_for=timedelta(seconds=90))
    assert recover_dead_dispatches(store, None, settings) == [stale]
    assert "no heartbeat for 90 s" in (state_of(store, stale)[1] or "")
    assert state_of(store, recent)[0] == "running"
    assert recover_dead_dispatches(store, None, settings) == []  # failed once, not again


def test_a_running_dispatch_beats(store: EventsStore) -> None:
    dispatch_id = start(store, this_process(), silent_for=timedelta(hours=1))
    with heartbeat(store, dispatch_id, interval=0.05):
        time.sleep(0.5)
    detail = store.get(dispatch_id)
    assert detail is not None and detail.dispatch.heartbeat_at is not None
    assert datetime.now(UTC) - detail.dispatch.heartbeat_at < timedelta(seconds=30)


def test_rows_committed_but_not_recorded_are_recovered_from_the_marker(
    store: EventsStore, lake: Datalake, settings: Settings
) -> None:
    """Batch 1 committed and recorded, batch 2 committed, then the kill: batch 2 comes back."""
    dispatch_id = start(store, Owner(socket.gethostname(), gone_pid(), None))
    first, second = lake.read_pending(None, 10), lake.read_pending(10, 10)
    assert lake.write_back(dispatch_id, {2: first.keys}, invalid=[]) == 10
    store.record_batch(
        dispatch_id,
        [],
        [RowPrediction(index, str(key), 2, "ok", None) for index, key in enumerate(first.keys)],
        Counters(10, 10, 0, 10),
    )
    invalid = [key for key, elevation in zip(second.keys, second.columns["Elevation"], strict=True)
               if elevation is None or elevation > 5000]  # fmt: skip
    valid = [key for key in second.keys if key not in invalid]
    lake.write_back(dispatch_id, {5: valid}, invalid=invalid)

    assert recover_dead_dispatches(store, lake, settings) == [dispatch_id]
    detail = store.get(dispatch_id)
    assert detail is not None
    record = detail.dispatch
    assert (record.state, record.rows_read, record.rows_written) == ("failed", 20, 10 + len(valid))
    assert record.rows_invalid == len(invalid)
    assert [p.row_key for p in detail.predictions] == [str(key) for key in range(1, 21)]
    recovered = {p.row_key: p for p in detail.predictions[10:]}
    assert all(recovered[str(key)].predicted_class == 5 for key in valid)
    for key in invalid:
        assert recovered[str(key)].status == "invalid"
        assert (recovered[str(key)].error or "").split(":")[0] in ("Elevation", "Slope")
    assert [event.event for event in detail.events][-2:] == ["persisted", "failed"]
    assert "recovered after the dispatch died" in (detail.events[-2].detail or "")


def test_a_dead_dispatch_stays_running_while_the_datalake_cannot_be_read(
    store: EventsStore, lake: Datalake, settings: Settings
) -> None:
    dispatch_id = start(store, Owner(socket.gethostname(), gone_pid(), None))
    with lake.engine.begin() as connection:
        connection.execute(sa.text(f"ALTER TABLE {TABLE} RENAME TO elsewhere"))
    assert recover_dead_dispatches(store, lake, settings) == []
    assert state_of(store, dispatch_id)[0] == "running"


def test_stale_after_must_cover_several_heartbeats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 3 times"):
        Settings(state_dir=tmp_path, dispatch_heartbeat_seconds=30, dispatch_stale_after_seconds=60)


def test_owner_is_this_process() -> None:
    owner = this_process()
    assert owner.pid == os.getpid() and owner.host == socket.gethostname()
