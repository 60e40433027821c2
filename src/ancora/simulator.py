"""The batch data API simulator: the course's data API, quirks included, for tests and offline work.

The reference server (MLOps PUJ, project 2) keeps per group ``[last_advance, batch_number]`` with the
batch number starting at -1. A request first refuses a group whose batch number has reached the
number of batches, then advances the batch when more than the rotation period has passed since the
last advance (-1 jumps straight to 1), then answers a random tenth of a slice of the data. So batch 1
starts on the first request, the last batch is served by exactly one request, and every later
request is refused until the group is restarted.

Which slice a request samples is the one thing the two modes change:

* ``reference`` (the default: what users of the course's server meet): the server slices by the
  *group* number, so group N samples slice N (0-based) in every batch, the batch number is only a
  counter, and the same rows come back again and again. The last group's slice lies past the end of
  the data: ``random.sample`` raises, and the server answers a plain-text HTTP 500.
* ``intended`` (what the reference's comments describe): batch B samples the B-th slice, so every
  batch brings fresh rows.

The collector is written against these semantics, so the simulator copies them rather than tidying
them up.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ancora.config import Settings
from ancora.schema import COLUMN_NAMES

log = logging.getLogger(__name__)

GROUP_NUMBERS = range(1, 11)
"""The course assigns groups 1..10; any other number is refused."""

NOT_STARTED = -1
"""Batch number of a group that has not requested yet (the reference's initial value)."""

SAMPLE_DIVISOR = 10
"""Each request answers ``batch_size // SAMPLE_DIVISOR`` rows: a tenth of the batch."""

INVALID_GROUP_DETAIL = "Número de grupo inválido"
"""The reference's 400 detail for a bad group; it names the group, so the collector fails fast."""

EXHAUSTED_DETAIL = "Ya se recolectó toda la información minima necesaria"
"""The reference's 400 detail once all batches are consumed (its spelling); it never names the group."""

ROOT_BODY: dict[str, str] = {"Proyecto 2": "Extracción de datos, entrenamiento de modelos."}
"""What the reference answers on ``GET /``."""

REFERENCE = "reference"
"""Slice by group number, as the course's server really does (see the module docstring)."""
INTENDED = "intended"
"""Slice by batch number, as the course's server's comments intend."""
MODES = (REFERENCE, INTENDED)

INTERNAL_ERROR_BODY = "Internal Server Error"
"""Starlette's plain-text body for an unhandled exception: what the reference answers for an empty slice."""

Clock = Callable[[], float]
Row = list[str]


class SimulatorError(Exception):
    """A request the reference answers with HTTP 400; ``detail`` is the reference's message."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidGroupError(SimulatorError):
    def __init__(self) -> None:
        super().__init__(INVALID_GROUP_DETAIL)


class DataExhaustedError(SimulatorError):
    def __init__(self) -> None:
        super().__init__(EXHAUSTED_DETAIL)


class EmptySliceError(Exception):
    """The reference's ``random.sample`` of an empty slice raised: it answers HTTP 500, not a 400."""


@dataclass
class GroupState:
    last_advance: float = 0.0
    batch_number: int = NOT_STARTED


@dataclass(frozen=True)
class Sample:
    group_number: int
    batch_number: int
    rows: list[Row]


def load_rows(path: Path) -> list[Row]:
    """Read the served CSV as strings, refusing one whose columns are not the data contract's."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(header) != COLUMN_NAMES:
            raise ValueError(f"{path}: header {header} is not the covertype contract {list(COLUMN_NAMES)}")
        rows = [row for row in reader if row]
    for line, row in enumerate(rows, start=2):
        if len(row) != len(COLUMN_NAMES):
            raise ValueError(f"{path}:{line}: {len(row)} values, expected {len(COLUMN_NAMES)}")
    return rows


class StateStore:
    """Per-group state in the reference's own JSON shape ``{"1": [timestamp, batch], ...}``.

    Writes go to a temporary file that replaces the old one, so a crash never leaves half a file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[int, GroupState]:
        states = {group: GroupState() for group in GROUP_NUMBERS}
        if not self.path.exists():
            return states
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            for key, (last_advance, batch_number) in raw.items():
                if int(key) in states:
                    states[int(key)] = GroupState(float(last_advance), int(batch_number))
        except (ValueError, TypeError, AttributeError) as error:
            raise ValueError(
                f"{self.path}: unreadable simulator state ({error}); delete it to start over"
            ) from error
        return states

    def save(self, states: dict[int, GroupState]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {str(group): [state.last_advance, state.batch_number] for group, state in states.items()}
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            Path(temporary).replace(self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class BatchSimulator:
    """The reference's batch logic over in-memory rows, with an injectable clock for tests."""

    def __init__(
        self,
        rows: list[Row],
        *,
        batches: int,
        rotation_seconds: float,
        store: StateStore,
        clock: Clock = time.time,
        seed: int | None = None,
        mode: str = REFERENCE,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"simulator mode {mode!r} is not one of {', '.join(MODES)}")
        self.mode = mode
        self.batches = batches
        self.rotation_seconds = rotation_seconds
        self.batch_size = len(rows) // batches
        self.sample_size = self.batch_size // SAMPLE_DIVISOR
        if self.sample_size < 1:
            raise ValueError(
                f"{len(rows)} rows are too few for {batches} batches of at least {SAMPLE_DIVISOR} rows"
            )
        self._rows = rows
        self._store = store
        self._clock = clock
        self._rng = random.Random(seed)  # noqa: S311 - sampling, not security
        self._lock = threading.Lock()
        self._states = store.load()
        self._unsaved = False

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock = time.time) -> BatchSimulator:
        rows = load_rows(settings.simulator_dataset_path)
        log.info(
            "serving %s rows of %s in %s batches (%s mode); state in %s",
            len(rows),
            settings.simulator_dataset_path,
            settings.simulator_batches,
            settings.simulator_mode,
            settings.simulator_state_path,
        )
        return cls(
            rows,
            batches=settings.simulator_batches,
            rotation_seconds=settings.simulator_rotation_seconds,
            store=StateStore(settings.simulator_state_path),
            clock=clock,
            seed=settings.simulator_seed,
            mode=settings.simulator_mode,
        )

    def slice_rows(self, index: int) -> list[Row]:
        """The ``index``-th consecutive slice (0-based); empty past the end, as Python slicing is."""
        start = index * self.batch_size
        return self._rows[start : start + self.batch_size]

    def batch_rows(self, batch_number: int) -> list[Row]:
        """The intended mode's batch B: the B-th slice; rows past ``batches * batch_size`` never serve."""
        if not 1 <= batch_number <= self.batches:
            raise ValueError(f"batch {batch_number} is outside 1..{self.batches}")
        return self.slice_rows(batch_number - 1)

    def served_rows(self, group_number: int, batch_number: int) -> list[Row]:
        """The rows a request of this group in this batch samples from, in the simulator's mode."""
        if self.mode == REFERENCE:
            return self.slice_rows(group_number)
        return self.batch_rows(batch_number)

    def sample(self, group_number: int) -> Sample:
        """Answer one ``GET /data``: refuse, maybe advance, then draw a tenth of the served slice.

        The order is the reference's: the advance happens in memory before the draw, and the state is
        written only after a draw that worked. So a group whose slice is empty (reference mode) keeps
        advancing in memory although every request fails, and its advances reach the file only with
        another group's next successful request, as they do in the reference.
        """
        _check_group(group_number)
        with self._lock:
            state = self._states[group_number]
            if state.batch_number >= self.batches:
                raise DataExhaustedError()
            now = self._clock()
            if now - state.last_advance > self.rotation_seconds:
                state.last_advance = now
                state.batch_number += 2 if state.batch_number == NOT_STARTED else 1
                self._unsaved = True
            population = self.served_rows(group_number, state.batch_number)
            if len(population) < self.sample_size:
                raise EmptySliceError(
                    f"group {group_number}: slice of {len(population)} rows, "
                    f"cannot sample {self.sample_size} ({self.mode} mode)"
                )
            rows = self._rng.sample(population, self.sample_size)
            if self._unsaved:
                self._store.save(self._states)
                self._unsaved = False
            return Sample(group_number, state.batch_number, rows)

    def restart(self, group_number: int) -> None:
        """Answer ``GET /restart_data_generation``: the group starts over at batch 1 on its next request."""
        _check_group(group_number)
        with self._lock:
            self._states[group_number] = GroupState()
            self._store.save(self._states)
            self._unsaved = False

    def state(self, group_number: int) -> GroupState:
        _check_group(group_number)
        with self._lock:
            current = self._states[group_number]
            return GroupState(current.last_advance, current.batch_number)


def _check_group(group_number: int) -> None:
    if group_number not in GROUP_NUMBERS:
        raise InvalidGroupError()
