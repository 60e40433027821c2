"""Predictions: one row as JSON, or a batch as a JSON list or a CSV file."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
import pydantic_core
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ancora.schema import FEATURE_NAMES
from ancora.serving.errors import clip_text
from ancora.serving.registry import ServedModel
from ancora.serving.rows import (
    EXAMPLE_ROW,
    BatchTooLarge,
    FeatureColumns,
    FeatureRow,
    FeatureValues,
    RowsInvalid,
    body_errors,
    fast_json_row,
    parse_csv_columns,
    parse_json_columns,
    parse_json_row,
)
from ancora_inference.dependencies import RuntimeDep, ServedModelDep
from ancora_inference.limits import BodyTooSlow, refuse
from ancora_inference.runtime import ServingRuntime
from ancora_inference.runtime import request_id as new_request_id
from ancora_inference.schemas import BatchPrediction, ErrorMessage, InvalidInput, Prediction

router = APIRouter(tags=["predictions"])

REQUEST_ID_HEADER = "X-Request-ID"
"""Echoed (when a plain token) or made up, returned in the header and the body, kept in the log."""
USER_HEADER = "X-Ancora-User"
"""The Streamlit app's signed-in user, as the app reports it; recorded in the prediction log."""

BYTES_PER_ROW = 2048
"""Generous upper bound of one row's encoding; with the row limit it caps a batch body's size."""

PREDICT_MAX_BYTES = 16 * 1024
"""Cap of a ``/predict`` body: a row is about 400 bytes, so this leaves room for formatting and extra
fields (ignored) while an oversized body is refused (413) before it is read."""


def body_limits(batch_max_rows: int) -> dict[str, int]:
    """The body cap of each route that reads one (``inference.limits.BodyLimits``)."""
    return {"/predict": PREDICT_MAX_BYTES, "/predict/batch": batch_max_rows * BYTES_PER_ROW}


TYPED_ROW = {name: int(value) if value.isdigit() else value for name, value in EXAMPLE_ROW.items()}
NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorMessage, "description": "No model loaded yet (no champion), and why."}
}

FEATURE_ROW_SCHEMA = FeatureRow.model_json_schema()
"""Inlined in the request bodies below: the handlers read raw bytes, so FastAPI does not list the model."""

CSV_EXAMPLE = ",".join(FEATURE_NAMES) + "\n" + ",".join(EXAMPLE_ROW[name] for name in FEATURE_NAMES) + "\n"


@router.post(
    "/predict",
    summary="Predict one row",
    response_model=Prediction,
    responses={
        **NOT_READY,
        408: {"model": ErrorMessage, "description": "The body did not arrive in time."},
        413: {"model": ErrorMessage, "description": f"A body larger than {PREDICT_MAX_BYTES} bytes."},
        415: {"model": ErrorMessage, "description": "Not application/json."},
        422: {"model": InvalidInput, "description": "A field is missing, mistyped or out of range."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": FEATURE_ROW_SCHEMA,
                    "examples": {
                        "raw": {"summary": "As the data API sends it (strings)", "value": EXAMPLE_ROW},
                        "typed": {"summary": "With numbers", "value": TYPED_ROW},
                    },
                }
            },
        }
    },
)
async def predict(request: Request) -> Response:
    """Cover type of one observation with the probability of every class.

    Concurrent calls are coalesced into one model call (micro-batching), so throughput grows with
    concurrency while a lone request is predicted at once.
    """
    # The hot path: the body is decoded and checked straight from the bytes (msgspec, and pydantic to
    # name what is wrong), without FastAPI's JSON decoding, content-type parsing and dependency
    # solving, which took a third of a request's CPU time; errors keep FastAPI's 422 format.
    runtime: ServingRuntime = request.app.state.runtime
    model = runtime.watcher.current
    if model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=runtime.not_ready_reason())
    media_type = request.headers.get("content-type", "application/json")
    if not _is_json(media_type):
        detail = f"send application/json, not {clip_text(media_type)}"
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail=detail)
    started = time.perf_counter()
    try:
        values = parse_json_row(await request.body())
    except ValidationError as error:
        raise RequestValidationError(body_errors(error)) from None
    request_id = new_request_id(request.headers.get(REQUEST_ID_HEADER))
    user = request.headers.get(USER_HEADER)
    body = await _predict_one(runtime, model, values, request_id, user, started)
    return Response(body, media_type="application/json", headers={REQUEST_ID_HEADER: request_id})


async def _predict_one(
    runtime: ServingRuntime,
    model: ServedModel,
    values: FeatureValues,
    request_id: str,
    user: str | None,
    started: float,
) -> bytes:
    probabilities = await runtime.batcher.predict_proba(model, [values])
    winners = probabilities.argmax(axis=1)
    runtime.metrics.count_predictions(model, winners)
    runtime.record("/predict", request_id, user, model, [values], winners, probabilities, started)
    (row,) = row_predictions(model, winners, probabilities)
    return pydantic_core.to_json({**_identity(model), "request_id": request_id, **row})


def _is_json(media_type: str) -> bool:
    media_type = media_type.split(";")[0].strip().lower()
    return media_type in ("application/json", "") or media_type.endswith("+json")


class PredictFastPath:
    """Pure ASGI handling of the common ``POST /predict``: a plainly valid row while a model is loaded.

    It runs before the whole Starlette stack (``InferenceAPI``), which cost about half of a request's
    CPU time in the API process: the error middleware, the metrics and body-limit layers with their
    wrapped ``send`` and ``receive``, routing and FastAPI's request machinery. So it does their part
    itself: it takes only a body declared within ``PREDICT_MAX_BYTES`` and complete in its first
    message, answers 408 when that message does not arrive in time, and counts the request in the
    route's metrics. Anything else (no model yet, another content type, a chunked, oversized or
    trickled body, a row that needs pydantic to accept it or to say what is wrong) goes to ``fallback``,
    the full stack, with what was read replayed; the FastAPI route above stays the one reference for
    errors and the OpenAPI document.
    """

    def __init__(self, fallback: ASGIApp, runtime: ServingRuntime) -> None:
        self.fallback = fallback
        self.runtime = runtime

    @staticmethod
    def handles(scope: Scope) -> bool:
        return bool(scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/predict")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        model = self.runtime.watcher.current
        declared = _header(scope, b"content-length", "")
        if (
            model is None
            or not declared.isdigit()
            or int(declared) > PREDICT_MAX_BYTES
            or not _is_json(_header(scope, b"content-type", "application/json"))
        ):
            await self.fallback(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        try:
            timeout = self.runtime.settings.inference_body_timeout_seconds
            message = await _receive_within(receive, timeout)
            if message is None:
                status = 408
                await refuse(send, 408, str(BodyTooSlow(timeout)))
                return
            if message["type"] != "http.request":
                return  # the client went away
            body = message.get("body", b"")
            values = fast_json_row(body) if not message.get("more_body", False) else None
            if values is None:
                status = 0  # counted by the full stack
                await self.fallback(scope, _replay(body, receive, message.get("more_body", False)), send)
                return
            request_id = new_request_id(_header(scope, REQUEST_ID_HEADER.lower().encode(), ""))
            user = _header(scope, USER_HEADER.lower().encode(), "") or None
            answer = await _predict_one(self.runtime, model, values, request_id, user, started)
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer)).encode()),
                (REQUEST_ID_HEADER.lower().encode(), request_id.encode()),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": answer})
            status = 200
        finally:
            if status:
                self.runtime.metrics.count_request("/predict", "POST", status, time.perf_counter() - started)


async def _receive_within(receive: Receive, seconds: float) -> Message | None:
    """``receive()``, or None after ``seconds``: a bare timer that cancels the task, which costs a
    fraction of ``asyncio.timeout`` on a path where the message is nearly always there already."""
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        return await receive()
    except asyncio.CancelledError:
        if not expired:
            raise
        task.uncancel()
        return None
    finally:
        timer.cancel()


def _header(scope: Scope, name: bytes, default: str) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return default


def _replay(body: bytes, receive: Receive, more_body: bool = False) -> Receive:
    """A ``receive`` that hands the already read body to the next app once, then defers to the client."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more_body}
        return await receive()

    return replay


@router.post(
    "/predict/batch",
    summary="Predict many rows (JSON list or CSV)",
    response_model=BatchPrediction,
    responses={
        **NOT_READY,
        408: {"model": ErrorMessage, "description": "The body did not arrive in time."},
        413: {"model": ErrorMessage, "description": "More rows (or bytes) than the configured limit."},
        415: {"model": ErrorMessage, "description": "Neither application/json nor text/csv."},
        422: {"model": InvalidInput, "description": "A row breaks the contract, or a wrong CSV header."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A JSON list of rows, or a CSV file whose header names the 12 features "
            "(any order; a Cover_Type column is ignored). The row limit is ANCORA_INFERENCE_BATCH_MAX_ROWS.",
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": FEATURE_ROW_SCHEMA},
                    "example": [EXAMPLE_ROW, TYPED_ROW],
                },
                "text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE},
            },
        }
    },
)
async def predict_batch(request: Request, runtime: RuntimeDep, model: ServedModelDep) -> Response:
    """Predictions in input order, all from one model version.

    The body's size and arrival time are capped by ``inference.limits.BodyLimits``; it is parsed in a
    thread, at most ``runtime.BATCH_PARSING_SLOTS`` at a time, so a large batch never holds the event
    loop (a 10,000-row CSV takes tens of milliseconds to parse).
    """
    started = time.perf_counter()
    limit = runtime.settings.inference_batch_max_rows
    media_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    parse: Callable[[bytes, int], FeatureColumns]
    if media_type == "text/csv":
        parse = parse_csv_columns
    elif media_type in ("application/json", "") or media_type.endswith("+json"):
        parse = parse_json_columns
    else:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"send application/json or text/csv, not {clip_text(media_type)}",
        )
    body = await request.body()
    try:
        async with runtime.batch_parsing:
            values = await run_in_threadpool(parse, body, limit)
    except BatchTooLarge as error:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=str(error)) from None
    except RowsInvalid as error:
        raise RequestValidationError(error.errors) from None
    probabilities = await runtime.batcher.predict_proba(model, values)
    winners = probabilities.argmax(axis=1)
    runtime.metrics.count_predictions(model, winners)
    request_id = new_request_id(request.headers.get(REQUEST_ID_HEADER))
    user = request.headers.get(USER_HEADER)
    runtime.record("/predict/batch", request_id, user, model, values, winners, probabilities, started)
    rows = batch_rows(model, winners, probabilities)
    answer = {**_identity(model), "request_id": request_id, "count": len(rows), "predictions": rows}
    headers = {REQUEST_ID_HEADER: request_id}
    return Response(msgspec.json.encode(answer), media_type="application/json", headers=headers)


def _identity(model: ServedModel) -> dict[str, Any]:
    return {"model_name": model.ref.name, "model_version": model.ref.version, "run_id": model.ref.run_id}


def row_predictions(
    model: ServedModel, winners: np.ndarray[Any, Any], probabilities: np.ndarray[Any, Any]
) -> list[dict[str, Any]]:
    """The answer rows (``RowPrediction``), serialized without FastAPI's re-validation of the declared
    response model, which cost a large share of a single-row request's CPU time."""
    labels = [str(label) for label in model.classes]
    return [
        {
            "prediction": model.classes[winner],
            "class_name": model.class_names[winner],
            "probabilities": dict(zip(labels, row, strict=True)),
        }
        for winner, row in zip(winners.tolist(), probabilities.tolist(), strict=True)
    ]


@functools.lru_cache(maxsize=8)
def _prediction_struct(classes: tuple[int, ...]) -> Any:
    """A msgspec type per class list: a batch's rows encode in C, without one dict per row."""
    fields = [f"p{index}" for index in range(len(classes))]
    probabilities = msgspec.defstruct(
        "Probabilities",
        [(name, float) for name in fields],
        rename=dict(zip(fields, map(str, classes), strict=True)),
        gc=False,
    )
    fields_of_row = [("prediction", int), ("class_name", str), ("probabilities", probabilities)]
    return msgspec.defstruct("RowPrediction", fields_of_row, gc=False), probabilities


def batch_rows(
    model: ServedModel, winners: np.ndarray[Any, Any], probabilities: np.ndarray[Any, Any]
) -> list[Any]:
    """The same rows as ``row_predictions``, as msgspec structs made column by column: for 10,000 rows
    a third of the time of building and serializing dicts."""
    row_type, probabilities_type = _prediction_struct(model.classes)
    return list(
        map(
            row_type,
            np.asarray(model.classes)[winners].tolist(),
            np.asarray(model.class_names, dtype=object)[winners].tolist(),
            map(probabilities_type, *probabilities.T.tolist()),
        )
    )
