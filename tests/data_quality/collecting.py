"""Collect from the data API simulator in this process, with a clock the test moves (no waiting)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from ancora.collection import CollectionResult, fetch_batch, store_batch, validate_batch
from ancora.config import Settings
from ancora.locations import COVERTYPE_CSV, shipped_dataset
from ancora.store import RawRowStore
from ancora_data_api.app import create_app

DATASET = shipped_dataset(COVERTYPE_CSV)
ROTATION_SECONDS = 300.0


class MovableClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class InProcessApi:
    client: TestClient
    clock: MovableClock
    group: int

    def collect(self, store: RawRowStore, run_id: str) -> CollectionResult:
        fetched = fetch_batch(str(self.client.base_url), self.group, timeout=10, client=self.client)
        result = store_batch(store, fetched, validate_batch(fetched), run_id)
        self.clock.now += 1
        return result

    def next_batch(self) -> None:
        self.clock.now += ROTATION_SECONDS + 1


@contextmanager
def simulator(state_dir: Path, group: int, mode: str, seed: int = 14) -> Iterator[InProcessApi]:
    clock = MovableClock()
    settings = Settings(
        _env_file=None,
        state_dir=state_dir,
        simulator_mode=mode,
        simulator_seed=seed,
        simulator_rotation_seconds=ROTATION_SECONDS,
        simulator_dataset_path=DATASET,
    )
    with TestClient(create_app(settings, clock=clock)) as client:
        yield InProcessApi(client, clock, group)


def collect_batches(
    api: InProcessApi,
    store: RawRowStore,
    batches: int,
    collects_per_batch: int,
    after_batch: Callable[[int], None] = lambda batch: None,
) -> int:
    """`collects_per_batch` collects in each batch's window, `after_batch` after each; returns responses."""
    responses = 0
    for batch in range(1, batches + 1):
        for attempt in range(collects_per_batch):
            result = api.collect(store, run_id=f"test-{batch}-{attempt}")
            if result.exhausted:  # the reference serves its last batch to one request only
                break
            assert result.batch == batch
            responses += 1
        after_batch(batch)
        api.next_batch()
    return responses
