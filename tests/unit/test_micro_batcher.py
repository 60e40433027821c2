"""The micro-batcher coalesces concurrent rows into one call, per model, and survives a failing call."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ancora.serving.batcher import MicroBatcher
from ancora.serving.registry import ServedModel, VersionRef
from ancora.serving.rows import (
    EXAMPLE_ROW,
    FeatureRow,
    FeatureValues,
    frame_from_columns,
    row_values,
    validate_rows,
)


class SlowEstimator:
    """A stand-in estimator whose cost is per call, like a forest's: it sleeps, then echoes Elevation."""

    classes_ = np.array([1, 2])

    def __init__(self, seconds: float = 0.02, fail_on: int | None = None) -> None:
        self.seconds = seconds
        self.fail_on = fail_on
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        with self.lock:
            self.calls.append(len(frame))
        time.sleep(self.seconds)
        if self.fail_on is not None and self.fail_on in frame["Elevation"].tolist():
            raise ValueError("cannot predict this row")
        elevation = frame["Elevation"].to_numpy(dtype=float)
        return np.column_stack([elevation, -elevation])


def served(estimator: SlowEstimator, version: str = "1") -> ServedModel:
    return ServedModel(
        ref=VersionRef("covertype", "champion", version, None, f"models:/m-{version}"),
        estimator=estimator,
        classes=(1, 2),
        registry_uri="http://127.0.0.1:1",
        loaded_at=datetime.now(UTC),
        path=Path("."),
    )


def row(elevation: int) -> list[FeatureValues]:
    return [row_values(FeatureRow(**{**EXAMPLE_ROW, "Elevation": elevation}))]


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def _with_batcher(max_rows: int, body: Any) -> Any:
    sizes: list[int] = []
    batcher = MicroBatcher(max_rows, on_batch=sizes.append)
    await batcher.start()
    try:
        return await body(batcher), sizes
    finally:
        await batcher.stop()


def test_a_lone_request_is_predicted_at_once() -> None:
    estimator = SlowEstimator()
    model = served(estimator)

    async def body(batcher: MicroBatcher) -> Any:
        return await batcher.predict_proba(model, row(100))

    result, sizes = run(_with_batcher(64, body))
    assert result.tolist() == [[100.0, -100.0]]
    assert sizes == [1]


def test_concurrent_requests_share_calls_and_each_gets_its_own_rows() -> None:
    estimator = SlowEstimator()
    model = served(estimator)

    async def body(batcher: MicroBatcher) -> Any:
        return await asyncio.gather(*(batcher.predict_proba(model, row(i)) for i in range(40)))

    results, sizes = run(_with_batcher(16, body))
    assert [r.tolist() for r in results] == [[[float(i), -float(i)]] for i in range(40)]
    assert sum(sizes) == 40
    assert len(sizes) < 40 / 4
    assert max(sizes) <= 16


def test_a_request_larger_than_the_limit_goes_alone() -> None:
    model = served(SlowEstimator())
    big = row(7) * 50

    async def body(batcher: MicroBatcher) -> Any:
        return await asyncio.gather(batcher.predict_proba(model, row(1)), batcher.predict_proba(model, big))

    (_small, large), sizes = run(_with_batcher(16, body))
    assert len(large) == 50
    assert sorted(sizes) == [1, 50]


def test_rows_of_different_models_are_never_mixed() -> None:
    old, new = SlowEstimator(), SlowEstimator()
    old_model, new_model = served(old, "1"), served(new, "2")

    async def body(batcher: MicroBatcher) -> Any:
        return await asyncio.gather(
            *(batcher.predict_proba(old_model if i % 2 else new_model, row(i)) for i in range(20))
        )

    run(_with_batcher(64, body))
    assert sum(old.calls) == 10
    assert sum(new.calls) == 10


def test_frames_and_value_rows_share_a_call_in_queue_order() -> None:
    model = served(SlowEstimator())
    frame = validate_rows([{**EXAMPLE_ROW, "Elevation": e} for e in (300, 301)], 10)

    async def body(batcher: MicroBatcher) -> Any:
        blocker = asyncio.create_task(batcher.predict_proba(model, row(1)))
        await asyncio.sleep(0.005)
        results = await asyncio.gather(
            batcher.predict_proba(model, row(2)),
            batcher.predict_proba(model, frame),
            batcher.predict_proba(model, row(3)),
        )
        await blocker
        return results

    (two, pair, three), sizes = run(_with_batcher(64, body))
    assert two[:, 0].tolist() == [2.0]
    assert pair[:, 0].tolist() == [300.0, 301.0]
    assert three[:, 0].tolist() == [3.0]
    assert sizes == [1, 4]


def test_a_failing_call_fails_its_callers_and_the_batcher_goes_on() -> None:
    estimator = SlowEstimator(fail_on=13)
    model = served(estimator)

    async def body(batcher: MicroBatcher) -> Any:
        with pytest.raises(ValueError, match="cannot predict"):
            await batcher.predict_proba(model, row(13))
        return await batcher.predict_proba(model, row(5))

    result, _ = run(_with_batcher(64, body))
    assert result.tolist() == [[5.0, -5.0]]


def test_with_two_prediction_threads_two_calls_run_at_once() -> None:
    estimator = SlowEstimator(seconds=0.05)
    model = served(estimator)
    running = 0
    most = 0
    lock = threading.Lock()

    def predict(model: ServedModel, columns: Any) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            return model.predict_proba(frame_from_columns(columns))
        finally:
            with lock:
                running -= 1

    async def body() -> Any:
        batcher = MicroBatcher(4, predict=predict, concurrency=2)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.predict_proba(model, row(i)) for i in range(16)))
        finally:
            await batcher.stop()

    results = run(body())
    assert [r.tolist() for r in results] == [[[float(i), -float(i)]] for i in range(16)]
    assert most == 2
