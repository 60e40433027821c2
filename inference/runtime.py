"""Everything one app instance owns: settings, registry view, watcher, micro-batcher, metrics."""

from __future__ import annotations

import asyncio

from ancora.config import Settings
from ancora.serving.batcher import MicroBatcher
from ancora.serving.registry import ModelRegistry, configure_mlflow_http
from ancora.serving.watcher import ModelWatcher
from ancora.serving.worker import PredictWorkerPool
from inference.metrics import ServingMetrics

BATCH_PARSING_SLOTS = 2
"""Batch bodies parsed at once (in threads): more would not go faster on the GIL, only hold more memory."""


class ServingRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = ServingMetrics()
        self.registry = ModelRegistry(settings)
        self.metrics.init_model_labels(self.registry.name, self.registry.alias)
        self.worker = (
            PredictWorkerPool(settings.serving_predict_workers) if settings.serving_predict_worker else None
        )
        self.watcher = ModelWatcher(
            self.registry,
            settings.model_poll_interval_seconds,
            observer=self.metrics,
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
        self.batch_parsing = asyncio.Semaphore(BATCH_PARSING_SLOTS)

    async def start(self) -> None:
        """Start serving at once; the first registry check runs in the background, so liveness does
        not wait for a download and a missing champion does not stop the process."""
        configure_mlflow_http(self.settings)
        if self.worker is not None:
            self.worker.start()
        await self.batcher.start()
        self.watcher.start()

    async def stop(self) -> None:
        await self.watcher.stop()
        await self.batcher.stop()
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
