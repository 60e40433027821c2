"""Everything one app instance owns: settings, registry view, watcher, micro-batcher, metrics."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from typing import Any

import numpy as np

from ancora.config import ServingSettings
from ancora.monitoring.prediction_log import LoggedRequest, PredictionLogger
from ancora.monitoring.store import open_monitoring_store
from ancora.serving.batcher import MicroBatcher
from ancora.serving.registry import ModelRegistry, ServedModel, configure_mlflow_http
from ancora.serving.rows import FeatureColumns, FeatureValues
from ancora.serving.watcher import CheckResult, FailureKind, ModelWatcher
from ancora.serving.worker import PredictWorkerPool
from ancora_inference.heap import HeapFreezer
from ancora_inference.metrics import ServingMetrics
from ancora_inference.workers import ReloadSignal, shared_folder

log = logging.getLogger(__name__)

USERNAME_LENGTH = 150
"""The prediction log's username column: a longer X-Ancora-User is cut, so it cannot fail a write."""
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
"""What a caller's X-Request-ID may look like to be kept; anything else gets a fresh id."""
BATCH_PARSING_SLOTS = 2
"""Batch bodies parsed at once (in threads): more would not go faster on the GIL, only hold more memory."""


class ServingRuntime:
    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.metrics = ServingMetrics()
        self.registry = ModelRegistry(settings)
        self.metrics.init_model_labels(self.registry.name, self.registry.alias)
        self.worker = (
            PredictWorkerPool(settings.serving_predict_workers) if settings.serving_predict_worker else None
        )
        self.heap = HeapFreezer()
        self.watcher = ModelWatcher(
            self.registry,
            settings.model_poll_interval_seconds,
            observer=self,
            prepare=self.worker.prepare if self.worker else None,
        )
        self.batcher = MicroBatcher(
            settings.serving_microbatch_max_rows,
            on_batch=self.metrics.batch_rows.observe,
            predict=self.worker.predict_proba if self.worker else None,
            max_wait_seconds=settings.serving_microbatch_max_wait_ms / 1000,
            concurrency=settings.serving_predict_workers if self.worker else 1,
            compiled_in_process=settings.serving_compiled_in_process,
        )
        self.prediction_log: PredictionLogger | None = None
        self.batch_parsing = asyncio.Semaphore(BATCH_PARSING_SLOTS)
        folder = shared_folder()
        self.reload_signal = ReloadSignal(folder) if folder is not None else None
        self._following_reloads: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start serving at once; the first registry check runs in the background, so liveness does
        not wait for a download and a missing champion does not stop the process."""
        configure_mlflow_http(self.settings)
        if self.worker is not None:
            self.worker.start()
        await self.batcher.start()
        self.watcher.start()
        if self.reload_signal is not None:
            self._following_reloads = asyncio.create_task(
                self.reload_signal.follow(self.watcher.wake), name="reload-signal"
            )
        if self.settings.prediction_log_enabled:
            await asyncio.to_thread(self._start_prediction_log)

    def _start_prediction_log(self) -> None:
        """An events database that cannot be opened costs the log, never serving."""
        try:
            store = open_monitoring_store(self.settings.dispatch_events_db_url)
        except Exception as error:
            log.error("prediction log off: the events database cannot be opened: %s", error)
            return
        self.prediction_log = PredictionLogger(
            store,
            sample_rate=self.settings.prediction_log_sample_rate,
            max_queued_rows=self.settings.prediction_log_queue_rows,
            max_rows_per_write=self.settings.prediction_log_write_rows,
            on_rows=self.metrics.count_log_rows,
        )
        self.prediction_log.start()

    def record(
        self,
        route: str,
        request_id: str,
        username: str | None,
        model: ServedModel,
        values: list[FeatureValues] | FeatureColumns,
        winners: np.ndarray[Any, Any],
        probabilities: np.ndarray[Any, Any],
        started: float,
    ) -> None:
        """Hand a request's rows to the prediction log; returns at once, whatever the database does."""
        if self.prediction_log is None:
            return
        self.prediction_log.log(
            LoggedRequest(
                at=time.time(),
                request_id=request_id,
                route=route,
                username=username[:USERNAME_LENGTH] if username else None,
                model_name=model.ref.name,
                model_version=model.ref.version,
                classes=model.classes,
                values=values,
                winners=winners,
                probabilities=probabilities,
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        )

    def model_loaded(self, model: ServedModel) -> None:
        """The watcher swapped ``model`` in (on the event loop)."""
        self.metrics.model_loaded(model)
        self.heap.model_swapped()

    def check_failed(self, kind: FailureKind) -> None:
        self.metrics.check_failed(kind)

    def check_succeeded(self) -> None:
        self.metrics.check_succeeded()

    async def reload(self) -> CheckResult:
        """Check the alias now, here and in the sibling HTTP workers (which check on their own)."""
        if self.reload_signal is not None:
            self.reload_signal.send()
        return await self.watcher.check()

    async def stop(self) -> None:
        if self._following_reloads is not None:
            self._following_reloads.cancel()
        self.heap.cancel()
        await self.watcher.stop()
        await self.batcher.stop()
        if self.prediction_log is not None:
            await asyncio.to_thread(self.prediction_log.stop)
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)

    def not_ready_reason(self) -> str:
        last = self.watcher.last_check
        if last is None:
            return (
                f"no model loaded yet: still asking the registry for "
                f"'{self.registry.name}@{self.registry.alias}'"
            )
        return f"no model loaded: {last.error}"


def request_id(given: str | None) -> str:
    """The caller's X-Request-ID when it is a plain token, else a new time-ordered one.

    32 hex digits: the microseconds since the epoch, then 72 random bits. Ids that grow with time are
    appended at the end of the prediction log's request-id index; random ones landed on a random page
    each, which made every logged row dearer as the log grew (SQLite: 11 µs of CPU per row at 60,000
    rows, 30 µs at 300,000; flat at 9 µs with ordered ids). An id names a request, it guards nothing,
    so the fast non-cryptographic generator is enough.
    """
    if given and REQUEST_ID.fullmatch(given):
        return given
    return f"{time.time_ns() // 1000:014x}{random.getrandbits(72):018x}"
