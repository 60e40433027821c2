"""The inference API's app factory: one app per settings object, routers mounted in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from ancora.config import ServingSettings, load_settings
from ancora.serving.errors import reported_errors
from ancora_inference.limits import BodyLimits
from ancora_inference.metrics import MetricsMiddleware
from ancora_inference.routes import dispatches, health, metrics, models, predict
from ancora_inference.runtime import ServingRuntime

DESCRIPTION = """
Predicts the forest cover type of a covertype observation with the model version that the MLflow
registry alias (default `covertype@champion`) points at **now**.

- The alias is checked every poll interval (and on `POST /reload`); a new version is loaded beside
  the old one and swapped in atomically. Requests already running finish on the old version.
- A failed check or load keeps the old version serving and shows in `/ready`, `/models` and
  `/metrics`. Until a first version is loaded, predictions and `/ready` answer 503 and say why.
- Concurrent `/predict` calls are coalesced into one model call (adaptive micro-batching).
- Rows use the data API's format: the 12 feature columns, values as strings or numbers.
"""

TAGS = [
    {"name": "predictions", "description": "Cover type predictions, one row or a batch."},
    {"name": "models", "description": "The served model version and forced reloads."},
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics."},
    {"name": "dispatches", "description": "Scheduled batch scoring over the datalake: history and status."},
]


class InferenceAPI(FastAPI):
    """FastAPI with the common ``POST /predict`` answered before its middleware stack
    (``predict.PredictFastPath``); every other request goes through the stack unchanged."""

    predict_fast_path: predict.PredictFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast_path = self.predict_fast_path
        if fast_path is not None and fast_path.handles(scope):
            await fast_path(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def through_stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(settings: ServingSettings | None = None) -> InferenceAPI:
    settings = settings or load_settings(ServingSettings)
    runtime = ServingRuntime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = InferenceAPI(
        title="Ancora inference API",
        version="1.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.runtime = runtime

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, error: RequestValidationError) -> JSONResponse:
        """FastAPI's 422 format, with each value shown as a short preview and at most 50 items."""
        return JSONResponse({"detail": reported_errors(error.errors())}, status_code=422)

    # Before the stack: the /predict fast path. In it, the last added is the outermost: metrics, then
    # body limits.
    app.predict_fast_path = predict.PredictFastPath(app.through_stack, runtime)
    app.add_middleware(
        BodyLimits,
        max_bytes=predict.body_limits(settings.inference_batch_max_rows),
        default_max_bytes=predict.PREDICT_MAX_BYTES,
        timeout_seconds=settings.inference_body_timeout_seconds,
    )
    app.add_middleware(MetricsMiddleware, metrics=runtime.metrics)
    for router in (predict.router, models.router, health.router, metrics.router, dispatches.router):
        app.include_router(router)
    return app
