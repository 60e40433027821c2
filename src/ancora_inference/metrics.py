"""Prometheus metrics of one app, in its own registry so tests can build several apps in one process.

With several HTTP worker processes (``ANCORA_SERVING_HTTP_WORKERS``) the values live in prometheus
client's multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set by ``ancora serve`` before the workers
start), and ``/metrics`` adds up every worker's: counters and histograms are summed; the served
version is shown per worker (a ``pid`` label), the other gauges as their highest value among the live
workers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ancora.serving.registry import ServedModel
from ancora.serving.watcher import FailureKind
from ancora_inference.workers import forget_dead_workers, shared_folder

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384)


class ServingMetrics:
    """Request counts and latency, predictions per class, the loaded version, and reload failures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ancora_inference_requests",
            "HTTP requests answered, by route template, method and status code.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "ancora_inference_request_duration_seconds",
            "Time from request start to the end of the response, by route template and method.",
            ("route", "method"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "ancora_inference_predictions",
            "Rows predicted, by predicted cover type.",
            ("cover_type", "class_name"),
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "ancora_inference_predict_call_rows",
            "Rows per predict_proba call after micro-batching (higher under load is the point).",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.model_version = Gauge(
            "ancora_inference_model_version",
            "Registry version of the served model (0 while none is loaded).",
            ("name", "alias"),
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.model_info = Gauge(
            "ancora_inference_model_info",
            "1 for the served model version and run.",
            ("name", "alias", "version", "run_id"),
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.model_loaded_at = Gauge(
            "ancora_inference_model_loaded_timestamp_seconds",
            "When the served version was loaded (Unix time).",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.reloads = Counter(
            "ancora_inference_model_reloads",
            "Swaps to a new model version.",
            registry=self.registry,
        )
        self.reload_failures = Counter(
            "ancora_inference_reload_failures",
            "Failed checks of the alias: registry unreachable, version not loadable, or alias missing.",
            ("kind",),
            registry=self.registry,
        )
        self.last_check_failed = Gauge(
            "ancora_inference_last_check_failed",
            "1 when the latest check of the alias failed (the previous model keeps serving).",
            registry=self.registry,
            multiprocess_mode="livemax",
        )

        self.prediction_log_rows = Counter(
            "ancora_inference_prediction_log_rows",
            "Predicted rows by what the prediction log did with them: written, dropped_queue_full, "
            "dropped_write_error or sampled_out.",
            ("outcome",),
            registry=self.registry,
        )
        for outcome in ("written", "dropped_queue_full", "dropped_write_error", "sampled_out"):
            self.prediction_log_rows.labels(outcome)
        # Labelled children looked up once: ``labels()`` costs more than the count itself, and every
        # request pays it on the hot path.
        self._request_counts: dict[tuple[str, str, int], Any] = {}
        self._latencies: dict[tuple[str, str], Any] = {}
        self._class_counts: dict[tuple[int, str], Any] = {}
        self._served_info: Any = None

    def exposition(self) -> bytes:
        """The Prometheus text of this app, or of every HTTP worker when there are several."""
        folder = shared_folder()
        if folder is None:
            return generate_latest(self.registry)
        forget_dead_workers(folder)
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, str(folder))  # type: ignore[no-untyped-call]
        return generate_latest(combined)

    def count_log_rows(self, outcome: str, rows: int) -> None:
        self.prediction_log_rows.labels(outcome).inc(rows)

    def init_model_labels(self, name: str, alias: str) -> None:
        self.model_version.labels(name, alias).set(0)
        for kind in ("registry", "load", "missing"):
            self.reload_failures.labels(kind)

    def model_loaded(self, model: ServedModel) -> None:
        ref = model.ref
        self.model_version.labels(ref.name, ref.alias).set(float(ref.version))
        if self._served_info is not None:
            self._served_info.set(0)  # a worker's series stays in the shared files: 0, not gone
        self.model_info.clear()
        self._served_info = self.model_info.labels(ref.name, ref.alias, ref.version, ref.run_id or "")
        self._served_info.set(1)
        self.model_loaded_at.set(model.loaded_at.timestamp())
        self.reloads.inc()
        self.last_check_failed.set(0)

    def check_failed(self, kind: FailureKind) -> None:
        self.reload_failures.labels(kind).inc()
        self.last_check_failed.set(1)

    def check_succeeded(self) -> None:
        self.last_check_failed.set(0)

    def count_predictions(self, model: ServedModel, winners: np.ndarray[Any, Any]) -> None:
        if len(winners) <= len(model.classes):
            for winner in winners.tolist():
                self._class_count(model.classes[winner], model.class_names[winner]).inc()
            return
        counts: Sequence[int] = np.bincount(winners, minlength=len(model.classes)).tolist()
        for label, name, count in zip(model.classes, model.class_names, counts, strict=True):
            if count:
                self._class_count(label, name).inc(count)

    def _class_count(self, label: int, name: str) -> Any:
        child = self._class_counts.get((label, name))
        if child is None:
            child = self._class_counts[(label, name)] = self.predictions.labels(str(label), name)
        return child

    def count_request(self, route: str, method: str, status: int, seconds: float) -> None:
        counter = self._request_counts.get((route, method, status))
        if counter is None:
            counter = self.requests.labels(route, method, str(status))
            self._request_counts[(route, method, status)] = counter
        counter.inc()
        latency = self._latencies.get((route, method))
        if latency is None:
            latency = self._latencies[(route, method)] = self.latency.labels(route, method)
        latency.observe(seconds)


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware), so counting costs microseconds, not a task per request."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = route.path if isinstance(route, Route) else "unmatched"
            self.metrics.count_request(template, scope["method"], status, time.perf_counter() - start)
