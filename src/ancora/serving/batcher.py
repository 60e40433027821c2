"""Adaptive micro-batching: concurrent requests share one ``predict_proba`` call.

A forest's predict costs about the same for 1 row as for 32 (the price is per call: input checks,
one Python call per tree), so rows that wait while a call runs are coalesced into the next one. No
timer is involved: an idle service predicts a lone row at once, a busy one batches as much as is
queued, up to a row limit. Each request carries the model it arrived under, and rows of different
models are never mixed, so a swap never changes the answer of a request already in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from ancora.serving.registry import ServedModel
from ancora.serving.rows import FeatureValues, features_frame

log = logging.getLogger(__name__)

Probabilities = np.ndarray[Any, Any]


Rows: TypeAlias = Sequence[FeatureValues] | pd.DataFrame
"""Value tuples from single-row requests, or a features frame already built by the batch endpoint."""


@dataclass
class _Pending:
    model: ServedModel
    rows: Rows
    future: asyncio.Future[Probabilities]


class MicroBatcher:
    """One worker task feeds one prediction thread; callers await their own slice of the result."""

    def __init__(
        self,
        max_rows: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.max_rows = max_rows
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._carry: _Pending | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._worker = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the service is shutting down"))

    async def predict_proba(self, model: ServedModel, rows: Rows) -> Probabilities:
        """Probabilities of ``rows`` (``model.classes`` order), computed together with other callers' rows."""
        if self._worker is None:
            raise RuntimeError("the micro-batcher is not running")
        future: asyncio.Future[Probabilities] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(model, rows, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            try:
                await self._predict(batch)
            except asyncio.CancelledError:
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(RuntimeError("the service is shutting down"))
                raise

    async def _next_batch(self) -> list[_Pending]:
        """Everything queued right now, oldest first, up to ``max_rows`` (a larger request goes alone)."""
        first = self._carry or await self._queue.get()
        self._carry = None
        batch = [first]
        rows = len(first.rows)
        while rows < self.max_rows and not self._queue.empty():
            pending = self._queue.get_nowait()
            if rows + len(pending.rows) > self.max_rows:
                self._carry = pending
                break
            batch.append(pending)
            rows += len(pending.rows)
        return batch

    async def _predict(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        by_model: dict[int, list[_Pending]] = {}
        for pending in batch:
            if not pending.future.cancelled():
                by_model.setdefault(id(pending.model), []).append(pending)
        for group in by_model.values():
            model = group[0].model
            parts = [pending.rows for pending in group]
            rows = sum(len(part) for part in parts)
            try:
                probabilities = await loop.run_in_executor(self._executor, _predict_parts, model, parts)
            except Exception as error:
                log.exception("prediction of %d rows failed", rows)
                for pending in group:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            if self._on_batch is not None:
                self._on_batch(rows)
            start = 0
            for pending in group:
                stop = start + len(pending.rows)
                if not pending.future.done():
                    pending.future.set_result(probabilities[start:stop])
                start = stop


def _predict_parts(model: ServedModel, parts: list[Rows]) -> Probabilities:
    """One frame for the whole micro-batch, in queue order, so result slices line up with callers."""
    frames: list[pd.DataFrame] = []
    tuples: list[FeatureValues] = []
    for part in parts:
        if isinstance(part, pd.DataFrame):
            if tuples:
                frames.append(features_frame(tuples))
                tuples = []
            frames.append(part)
        else:
            tuples.extend(part)
    if tuples:
        frames.append(features_frame(tuples))
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return model.predict_proba(frame)
