"""Keeps the served model out of the cyclic garbage collector's full passes.

A loaded model brings hundreds of thousands of long-lived Python objects (MLflow, scikit-learn,
pandas and what they import). Every full (generation 2) collection walks all of them while holding
the GIL: measured in the API process serving the compiled forest, 17 to 143 ms each, a stall of
every connection at once. After a swap the heap is collected once and frozen (``gc.freeze``), so
later full passes only walk what requests create. The pass waits a few seconds after the swap, so
requests still on the old version have let it go and a cycle in it is freed, not frozen for ever.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)

SETTLE_SECONDS = 5.0
"""Time after a swap before the collection: far longer than a request on the old version takes."""


def collect_and_freeze() -> tuple[int, float]:
    """Unfreeze what an earlier swap froze, collect everything, freeze what is left; returns the
    frozen object count and the seconds the pass took (the GIL is held that long, once per swap)."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count(), time.perf_counter() - started


class HeapFreezer:
    """Schedules ``collect_and_freeze`` ``settle_seconds`` after each swap; a newer swap reschedules it."""

    def __init__(self, settle_seconds: float = SETTLE_SECONDS) -> None:
        self.settle_seconds = settle_seconds
        self._pending: asyncio.TimerHandle | None = None

    def model_swapped(self) -> None:
        """Call on the event loop, right after the swap."""
        if self._pending is not None:
            self._pending.cancel()
        self._pending = asyncio.get_running_loop().call_later(self.settle_seconds, self._start)

    def _start(self) -> None:
        self._pending = None
        asyncio.get_running_loop().run_in_executor(None, collect_and_freeze).add_done_callback(_report)

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


def _report(done: asyncio.Future[tuple[int, float]]) -> None:
    if done.cancelled():
        return
    error = done.exception()
    if error is not None:
        log.warning("heap freeze after the swap failed: %s", error)
        return
    frozen, seconds = done.result()
    log.info("heap collected and frozen after the swap: %d objects, %.0f ms", frozen, seconds * 1000)
