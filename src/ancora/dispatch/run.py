"""One dispatch: score every datalake row awaiting a prediction with the champion, batch by batch.

The champion is loaded by the serving core (``ancora.serving``: the registry alias, the artifact
cache, the smoke test) and rows are checked by the same contract code as ``/predict/batch``, so a
dispatch predicts exactly what the inference API would. Each batch is read, checked, predicted and
written back in one datalake transaction; its events and predictions are recorded after the commit.
A failure ends the dispatch ``failed`` with the reason; batches already committed stay, the one in
flight is rolled back, and the next dispatch picks up what still awaits a prediction.

A dispatch killed outright cannot record its end. While it runs it records a heartbeat and its
process; the next dispatch marks one whose process is gone (same host) or whose heartbeat stopped
``failed``, and records from the datalake's marker column the rows it had committed but not yet
recorded (the datalake commit and the events record are two commits: a kill can fall between them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy.exc import SQLAlchemyError

from ancora.config import Settings
from ancora.dispatch.datalake import (
    Datalake,
    DatalakeConfigError,
    DatalakeError,
    PendingBatch,
    describe_error,
    open_datalake,
)
from ancora.dispatch.events import (
    Counters,
    DispatchRecord,
    EventName,
    EventsStore,
    Owner,
    RowPrediction,
    open_events_store,
)
from ancora.dispatch.tables import ROW_KEY_LENGTH
from ancora.serving.registry import (
    ChampionMissing,
    ModelLoadFailed,
    ModelRegistry,
    RegistryUnavailable,
    ServedModel,
    configure_mlflow_http,
)
from ancora.serving.rows import check_columns
from ancora.stack.processes import PROC, is_running, process_info

log = logging.getLogger(__name__)

FailureKind = Literal["no_champion", "registry", "model", "datalake", "events", "config", "internal"]
RETRYABLE: frozenset[FailureKind] = frozenset({"registry", "datalake", "events"})
"""Faults another attempt may not meet; a missing champion or a bad setting needs a person."""

Event = tuple[EventName, datetime, str | None]


class DispatchFailed(Exception):
    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class DispatchSummary:
    """What ``ancora dispatch`` prints and the DAG task returns."""

    id: str
    dag_run_id: str | None
    state: Literal["succeeded", "failed"] = "failed"
    model_name: str | None = None
    model_version: str | None = None
    table: str = ""
    batches: int = 0
    counters: Counters = field(default_factory=Counters)
    seconds: float = 0.0
    model_load_seconds: float = 0.0
    """Resolving the alias and loading the champion: a fixed cost per dispatch, not per row."""
    error: str | None = None
    failure: FailureKind | None = None
    recovered: list[str] = field(default_factory=list)
    """Dispatches found dead at the start and marked failed by this one."""

    @property
    def retryable(self) -> bool:
        return self.failure in RETRYABLE

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dag_run_id": self.dag_run_id,
            "state": self.state,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "table": self.table,
            "batches": self.batches,
            **self.counters.__dict__,
            "seconds": round(self.seconds, 3),
            "model_load_seconds": round(self.model_load_seconds, 3),
            "error": self.error,
            "failure": self.failure,
            "recovered": self.recovered,
        }


@dataclass(frozen=True)
class ScoredBatch:
    """A batch's outcome: keys grouped by predicted class (for the write), and every row's record."""

    by_class: dict[int, list[Any]]
    invalid_keys: list[Any]
    predictions: list[RowPrediction]

    @property
    def predicted(self) -> int:
        return sum(len(keys) for keys in self.by_class.values())


RECOVERY_BATCH_ROWS = 10_000
"""Rows read back at a time when a dead dispatch's committed rows are recorded."""

BatchHook = Callable[[int, DispatchSummary], None]
"""Called after each committed batch with its number and the running summary (progress, tests)."""


def new_dispatch_id(now: datetime | None = None) -> str:
    """Sortable and readable: the start time, then randomness so two starts in a second differ."""
    return f"{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def load_champion(settings: Settings) -> ServedModel:
    """The version the serving alias points at, loaded as the inference API loads it."""
    configure_mlflow_http(settings)
    registry = ModelRegistry(settings)
    registry.n_jobs = settings.dispatch_n_jobs
    registry.call_rows = settings.dispatch_batch_rows
    try:
        return registry.load(registry.current_version())
    except ChampionMissing as error:
        raise DispatchFailed("no_champion", f"no champion to score with: {error}") from error
    except RegistryUnavailable as error:
        raise DispatchFailed("registry", f"model registry unavailable: {error}") from error
    except ModelLoadFailed as error:
        raise DispatchFailed("model", f"the champion could not be loaded: {error}") from error


def score_batch(model: ServedModel, batch: PendingBatch, first_position: int) -> ScoredBatch:
    """Check every row against the contract, predict the valid ones in one call, keep read order."""
    checked = check_columns(batch.columns)
    by_class: dict[int, list[Any]] = {}
    labels: list[int | None] = [None] * len(batch)
    if checked.positions:
        winners = model.predict_proba(checked.frame).argmax(axis=1)
        classes = np.asarray(model.classes)[winners].tolist()
        for position, label in zip(checked.positions, classes, strict=True):
            labels[position] = label
            by_class.setdefault(label, []).append(batch.keys[position])
    row_keys = [str(key) for key in batch.keys]
    longest = max(row_keys, key=len)
    if len(longest) > ROW_KEY_LENGTH:
        raise DispatchFailed("config", f"datalake key {longest[:40]}... is longer than {ROW_KEY_LENGTH}")
    errors = checked.errors
    predictions = [
        RowPrediction(first_position + position, row_key, label, "ok", None)
        if label is not None
        else RowPrediction(first_position + position, row_key, None, "invalid", errors.get(position))
        for position, (row_key, label) in enumerate(zip(row_keys, labels, strict=True))
    ]
    invalid_keys = [batch.keys[position] for position in errors]
    return ScoredBatch(by_class, invalid_keys, predictions)


def run_dispatch(
    settings: Settings,
    dag_run_id: str | None = None,
    max_rows: int | None = None,
    batch_rows: int | None = None,
    after_batch: BatchHook | None = None,
) -> DispatchSummary:
    """Run one dispatch to its end and return its summary; it never raises for a datalake or model fault.

    Only an unreachable events database raises, since nothing could then be recorded.
    """
    events = open_events_store(settings.dispatch_events_db_url)
    try:
        return _run(events, settings, dag_run_id, max_rows, batch_rows, after_batch)
    finally:
        events.engine.dispose()


def _run(
    events: EventsStore,
    settings: Settings,
    dag_run_id: str | None,
    max_rows: int | None,
    batch_rows: int | None,
    after_batch: BatchHook | None,
) -> DispatchSummary:
    summary = DispatchSummary(id=new_dispatch_id(), dag_run_id=dag_run_id)
    started = time.perf_counter()
    limit = batch_rows or settings.dispatch_batch_rows
    unrecorded: list[Event] = []
    owner = this_process()
    try:
        datalake = open_datalake(settings)
    except DatalakeConfigError as error:
        summary.table = settings.datalake_table
        summary.recovered = recover_dead_dispatches(events, None, settings)
        events.start(summary.id, dag_run_id, summary.table, f"datalake {settings.datalake_table}", owner)
        return _fail(events, summary, started, [], "config", str(error))
    summary.table = datalake.layout.qualified_table
    try:
        summary.recovered = recover_dead_dispatches(events, datalake, settings)
        events.start(
            summary.id,
            dag_run_id,
            summary.table,
            f"datalake {datalake.where}, batches of {limit} rows"
            + (f", at most {max_rows} rows" if max_rows else ""),
            owner,
        )
        log.info("dispatch %s started on %s", summary.id, datalake.where)
        with heartbeat(events, summary.id, settings.dispatch_heartbeat_seconds):
            return _score(
                events, datalake, settings, summary, started, limit, max_rows, unrecorded, after_batch
            )
    finally:
        datalake.engine.dispose()


def this_process() -> Owner:
    info = process_info(os.getpid())
    return Owner(socket.gethostname(), os.getpid(), info.start_ticks if info is not None else None)


@contextlib.contextmanager
def heartbeat(events: EventsStore, dispatch_id: str, interval: float) -> Iterator[None]:
    """Record a heartbeat every ``interval`` seconds while the block runs; a failed beat only logs (the
    dispatch's own writes report an events database that is gone)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                events.beat(dispatch_id)
            except SQLAlchemyError as error:
                log.warning("dispatch %s: heartbeat not recorded: %s", dispatch_id, describe_error(error))

    thread = threading.Thread(target=beat, name="dispatch-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def death_of(record: DispatchRecord, now: datetime, stale_after: float, host: str) -> str | None:
    """Why a ``running`` dispatch must be dead, or None while it may still be running."""
    if record.host == host and record.pid is not None and PROC.exists():
        if not is_running(record.pid, record.pid_start_ticks):
            return (
                f"its process (pid {record.pid} on {host}) ended without recording an end: "
                "killed (SIGKILL, out of memory) or crashed"
            )
        return None
    last = record.heartbeat_at or record.started_at
    silent = (now - last).total_seconds()
    if silent > stale_after:
        return (
            f"no heartbeat for {silent:.0f} s (last {last:%Y-%m-%d %H:%M:%S} UTC, from "
            f"{record.host or 'an unknown host'}): its process was killed or cut off"
        )
    return None


def recover_dead_dispatches(events: EventsStore, datalake: Datalake | None, settings: Settings) -> list[str]:
    """Mark every dead ``running`` dispatch failed, with what it committed to the datalake but never
    recorded (read back by its marker); returns their ids. One whose rows cannot be read back now
    (the datalake is down) is left for the next dispatch, so nothing it wrote goes unrecorded."""
    now = datetime.now(UTC)
    host = socket.gethostname()
    recovered = []
    for record in events.running():
        reason = death_of(record, now, settings.dispatch_stale_after_seconds, host)
        if reason is None:
            continue
        rows: list[RowPrediction] = []
        added, detail = Counters(), None
        if datalake is not None and record.datalake_table == datalake.layout.qualified_table:
            try:
                rows, added, detail = _unrecorded_rows(events, datalake, record.id)
            except DatalakeError as error:
                log.warning("dispatch %s looks dead (%s); left running for now: %s", record.id, reason, error)
                continue
        if events.fail_dead(record.id, f"dispatch died: {reason}", rows, added, detail):
            log.warning("dispatch %s marked failed: %s", record.id, reason)
            recovered.append(record.id)
    return recovered


def _unrecorded_rows(
    events: EventsStore, datalake: Datalake, dispatch_id: str
) -> tuple[list[RowPrediction], Counters, str | None]:
    """Rows the datalake says ``dispatch_id`` wrote that its record lacks, checked again for their errors."""
    recorded, position = events.recorded_keys(dispatch_id)
    rows: list[RowPrediction] = []
    after: Any = None
    while True:
        batch = datalake.read_marked(dispatch_id, after, RECOVERY_BATCH_ROWS)
        if not batch.keys:
            break
        after = batch.keys[-1]
        missing = [index for index, key in enumerate(batch.keys) if str(key) not in recorded]
        invalid = [index for index in missing if batch.predictions[index] is None]
        errors = check_columns({name: [values[i] for i in invalid] for name, values in batch.columns.items()})
        reasons = {index: errors.errors.get(slot) for slot, index in enumerate(invalid)}
        for index in missing:
            label = batch.predictions[index]
            status: Literal["ok", "invalid"] = "ok" if label is not None else "invalid"
            rows.append(
                RowPrediction(
                    position, str(batch.keys[index]), int(label) if label is not None else None, status,
                    reasons.get(index),
                )
            )  # fmt: skip
            position += 1
    if not rows:
        return [], Counters(), None
    written = sum(row.status == "ok" for row in rows)
    invalid_rows = len(rows) - written
    added = Counters(len(rows), rows_predicted=written, rows_invalid=invalid_rows, rows_written=written)
    detail = (
        f"recovered after the dispatch died: {written} predictions and {invalid_rows} invalid rows "
        "it had committed to the datalake but not recorded"
    )
    return rows, added, detail


def _score(
    events: EventsStore,
    datalake: Datalake,
    settings: Settings,
    summary: DispatchSummary,
    started: float,
    limit: int,
    max_rows: int | None,
    unrecorded: list[Event],
    after_batch: BatchHook | None,
) -> DispatchSummary:
    try:
        loading = time.perf_counter()
        model = load_champion(settings)
        summary.model_load_seconds = time.perf_counter() - loading
        summary.model_name, summary.model_version = model.ref.name, model.ref.version
        events.set_model(summary.id, model.ref.name, model.ref.version)
        _score_pending(events, datalake, model, summary, limit, max_rows, unrecorded, after_batch)
    except DispatchFailed as error:
        return _fail(events, summary, started, unrecorded, error.kind, str(error))
    except DatalakeError as error:
        return _fail(events, summary, started, unrecorded, "datalake", f"datalake unavailable: {error}")
    except SQLAlchemyError as error:
        reason = f"dispatch events database: {describe_error(error)}"
        return _fail(events, summary, started, unrecorded, "events", reason)
    except Exception as error:
        log.exception("dispatch %s failed", summary.id)
        return _fail(events, summary, started, unrecorded, "internal", f"{type(error).__name__}: {error}")
    summary.state = "succeeded"
    summary.seconds = time.perf_counter() - started
    counters = summary.counters
    detail = (
        f"{counters.rows_read} rows read, {counters.rows_predicted} predicted, "
        f"{counters.rows_invalid} invalid, {counters.rows_written} written "
        f"in {summary.batches} batches ({summary.seconds:.1f} s)"
        if counters.rows_read
        else "no rows await a prediction"
    )
    events.finish(summary.id, "succeeded", [("finished", datetime.now(UTC), detail)])
    log.info("dispatch %s finished: %s", summary.id, detail)
    return summary


def _score_pending(
    events: EventsStore,
    datalake: Datalake,
    model: ServedModel,
    summary: DispatchSummary,
    limit: int,
    max_rows: int | None,
    unrecorded: list[Event],
    after_batch: BatchHook | None,
) -> None:
    """Read, score and write back every awaiting row, the three stages overlapping.

    While batch N is checked and predicted here, batch N+1 is read and batch N-1 is written back and
    recorded, each in its own thread: the datalake's driver, the database server and the model's
    tree traversal (which releases the GIL) then keep both cores busy instead of taking turns. Writes
    stay one at a time and in order, each batch in its own transaction. ``unrecorded`` holds the
    events of batches not yet recorded, so a failure can record how far they got.
    """
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dispatch-read")
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dispatch-write")
    writing: _Writing | None = None
    read_rows = 0

    def next_read(after_key: Any) -> Future[PendingBatch] | None:
        size = limit if max_rows is None else min(limit, max_rows - read_rows)
        return reader.submit(datalake.read_pending, after_key, size) if size > 0 else None

    try:
        reading = next_read(None)
        number = 0
        while reading is not None:
            batch = reading.result()
            if not batch.keys:
                break
            number += 1
            first_position = read_rows
            read_rows += len(batch)
            reading = next_read(batch.keys[-1])
            job_events: list[Event] = [
                (
                    "collected",
                    _now(),
                    f"batch {number}: {len(batch)} rows, keys {batch.keys[0]}..{batch.keys[-1]}",
                )
            ]
            unrecorded.extend(job_events)
            scored = score_batch(model, batch, first_position)
            predicted: Event = (
                "predicted",
                _now(),
                f"batch {number}: {scored.predicted} predicted, {len(scored.invalid_keys)} invalid",
            )
            job_events.append(predicted)
            unrecorded.append(predicted)
            _wait(writing, unrecorded)
            future = writer.submit(
                _persist, events, datalake, summary, number, scored, job_events, after_batch
            )
            writing = _Writing(len(job_events), future)
        _wait(writing, unrecorded)
        writing = None
    finally:
        if writing is not None:
            with contextlib.suppress(Exception):
                _wait(writing, unrecorded)
        reader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True)


@dataclass(frozen=True)
class _Writing:
    """The batch being written back: how many of the oldest unrecorded events are its own."""

    events: int
    future: Future[None]


def _wait(writing: _Writing | None, unrecorded: list[Event]) -> None:
    """Wait for the write in flight; raises its failure, else its events are recorded."""
    if writing is None:
        return
    writing.future.result()
    del unrecorded[: writing.events]


def _persist(
    events: EventsStore,
    datalake: Datalake,
    summary: DispatchSummary,
    number: int,
    scored: ScoredBatch,
    job_events: list[Event],
    after_batch: BatchHook | None,
) -> None:
    """Write one batch back in one transaction, then record its events, predictions and totals."""
    try:
        written = datalake.write_back(summary.id, scored.by_class, scored.invalid_keys)
    except DatalakeError as error:
        raise DatalakeError(f"batch {number}: {error}") from error
    skipped = scored.predicted - written
    persisted: Event = (
        "persisted",
        _now(),
        f"batch {number}: {written} predictions written"
        + (f", {skipped} rows already had one" if skipped else ""),
    )
    previous = summary.counters
    summary.counters = Counters(
        rows_read=previous.rows_read + len(scored.predictions),
        rows_predicted=previous.rows_predicted + scored.predicted,
        rows_invalid=previous.rows_invalid + len(scored.invalid_keys),
        rows_written=previous.rows_written + written,
    )
    summary.batches = number
    events.record_batch(summary.id, [*job_events, persisted], scored.predictions, summary.counters)
    if after_batch is not None:
        after_batch(number, summary)


def _fail(
    events: EventsStore,
    summary: DispatchSummary,
    started: float,
    unrecorded: list[Event],
    kind: FailureKind,
    reason: str,
) -> DispatchSummary:
    summary.state = "failed"
    summary.failure = kind
    summary.error = reason
    summary.seconds = time.perf_counter() - started
    events.finish(summary.id, "failed", [*unrecorded, ("failed", _now(), reason)], error=reason)
    log.error("dispatch %s failed: %s", summary.id, reason)
    return summary


def _now() -> datetime:
    return datetime.now(UTC)
