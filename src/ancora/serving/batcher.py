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

from ancora.schema import FEATURE_NAMES, NUMERIC_FEATURES
from ancora.serving.registry import ServedModel
from ancora.serving.rows import FeatureColumns, FeatureValues

log = logging.getLogger(__name__)

Probabilities = np.ndarray[Any, Any]
Columns: TypeAlias = dict[str, np.ndarray[Any, Any]]
Predict: TypeAlias = Callable[[ServedModel, Columns], Probabilities]
"""Probabilities of a micro-batch given column by column: in a thread here, or in the prediction worker."""


Rows: TypeAlias = Sequence[FeatureValues] | FeatureColumns | pd.DataFrame
"""Value tuples from single-row requests, checked columns from the batch endpoint, or a features frame."""


@dataclass
class _Pending:
    model: ServedModel
    rows: Rows
    future: asyncio.Future[Probabilities]


class MicroBatcher:
    """One task forms batches for up to ``concurrency`` prediction threads (one per prediction worker
    process); callers await their own slice of the result."""

    def __init__(
        self,
        max_rows: int,
        on_batch: Callable[[int], None] | None = None,
        predict: Predict | None = None,
        max_wait_seconds: float = 0.0,
        concurrency: int = 1,
        compiled_in_process: bool = False,
    ) -> None:
        self.max_rows = max_rows
        self.compiled_in_process = compiled_in_process
        self.max_wait_seconds = max_wait_seconds
        self.concurrency = concurrency
        self._on_batch = on_batch
        self._predict_columns = predict or predict_in_thread
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._carry: _Pending | None = None
        self._arrival: asyncio.Future[None] | None = None
        self._last_end = float("-inf")
        self._last_seconds = 0.0
        self._expected_rows = 0
        self._queued_rows = 0
        self._calling_rows = 0
        self._worker: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="predict")
        self._worker = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        for task in [*([self._worker] if self._worker else []), *self._calls]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
        self._queue.put_nowait(_Pending(model, rows, future))
        self._queued_rows += len(rows)
        if self._arrival is not None and not self._arrival.done():
            self._arrival.set_result(None)
        return await future

    async def _run(self) -> None:
        free = asyncio.Semaphore(self.concurrency)
        while True:
            await free.acquire()
            batch: list[_Pending] = []
            try:
                await self._next_batch(batch)
            except asyncio.CancelledError:
                _shut_down(batch)
                raise
            call = asyncio.create_task(self._call(batch, free))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)

    async def _call(self, batch: list[_Pending], free: asyncio.Semaphore) -> None:
        loop = asyncio.get_running_loop()
        rows = sum(len(pending.rows) for pending in batch)
        self._calling_rows += rows
        try:
            started = loop.time()
            await self._predict(batch)
        except asyncio.CancelledError:
            _shut_down(batch)
            raise
        finally:
            free.release()
            self._calling_rows -= rows
        self._last_end = loop.time()
        self._last_seconds = self._last_end - started
        # The callers just answered are likely to send again (a client's next request, a page of
        # users): with the rows waiting and those in other calls, that is the demand to share
        # between the prediction threads.
        demand = rows + self._queued_rows + self._calling_rows
        self._expected_rows = -(-demand // self.concurrency)

    async def _next_batch(self, batch: list[_Pending]) -> None:
        """Everything queued right now, oldest first, up to ``max_rows`` (a larger request goes alone).

        Right after a call, while the callers it answered are sending their next rows, it waits for
        them (up to ``max_wait_seconds`` and half the last call's time): a full call costs little
        more than a half one, so two half calls would halve the throughput. An idle service, whose
        last call ended longer ago than that, predicts a lone row at once.
        """
        first = self._carry or await self._queue.get()
        self._carry = None
        batch.append(first)
        self._queued_rows -= len(first.rows)
        rows = self._take_queued(batch, len(first.rows))
        if self.max_wait_seconds <= 0 or first.model.compiled is not None:
            # A compiled model's call costs about the same per row for 1 row as for 32, so waiting for
            # more rows saves nothing; measured, it only added latency (docs/inference.md, Throughput).
            return
        loop = asyncio.get_running_loop()
        deadline = self._last_end + min(self.max_wait_seconds, self._last_seconds / 2)
        while rows < min(self._expected_rows, self.max_rows) and self._carry is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            arrival: asyncio.Future[None] = loop.create_future()
            self._arrival = arrival
            try:
                async with asyncio.timeout(remaining):
                    await arrival
            except TimeoutError:
                return
            finally:
                self._arrival = None
            rows = self._take_queued(batch, rows)

    def _take_queued(self, batch: list[_Pending], rows: int) -> int:
        while rows < self.max_rows and not self._queue.empty():
            pending = self._queue.get_nowait()
            if rows + len(pending.rows) > self.max_rows:
                self._carry = pending
                break
            batch.append(pending)
            rows += len(pending.rows)
            self._queued_rows -= len(pending.rows)
        return rows

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
                probabilities = await loop.run_in_executor(self._executor, self._predict_parts, model, parts)
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

    def _predict_parts(self, model: ServedModel, parts: list[Rows]) -> Probabilities:
        columns = batch_columns(parts)
        compiled = model.compiled
        if (
            self.compiled_in_process
            and compiled is not None
            and compiled.takes(len(columns[FEATURE_NAMES[0]]))
        ):
            # ONNX Runtime releases the GIL: here, the hop to the worker process (pickling, two socket
            # messages, the child's wake-up) would cost more than the call itself.
            return compiled.predict_proba(columns)
        return self._predict_columns(model, columns)


def _shut_down(batch: list[_Pending]) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(RuntimeError("the service is shutting down"))


def predict_in_thread(model: ServedModel, columns: Columns) -> Probabilities:
    return model.predict_proba_columns(columns)


def batch_columns(parts: Sequence[Rows]) -> Columns:
    """One array per feature for the whole micro-batch, in queue order, so result slices line up with
    callers: NumPy arrays cost tens of microseconds to build and to send to the worker, a DataFrame
    about a millisecond."""
    pieces: dict[str, list[Any]] = {name: [] for name in FEATURE_NAMES}
    for part in parts:
        if isinstance(part, FeatureColumns):
            for name in FEATURE_NAMES:
                pieces[name].append(part.columns[name])
        elif isinstance(part, pd.DataFrame):
            for name in FEATURE_NAMES:
                pieces[name].append(part[name].to_numpy())
        elif len(part):
            for name, column in zip(FEATURE_NAMES, zip(*part, strict=True), strict=True):
                pieces[name].append(column)
    numeric = set(NUMERIC_FEATURES)
    columns: Columns = {}
    for name, chunks in pieces.items():
        dtype = np.int64 if name in numeric else object
        arrays = [np.asarray(chunk, dtype=dtype) for chunk in chunks]
        columns[name] = arrays[0] if len(arrays) == 1 else np.concatenate(arrays or [np.empty(0, dtype)])
    return columns
