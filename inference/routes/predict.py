"""Predictions: one row as JSON, or a batch as a JSON list or a CSV file."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pydantic_core
from fastapi import APIRouter, Body, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from ancora.schema import FEATURE_NAMES
from ancora.serving.registry import ServedModel
from ancora.serving.rows import (
    EXAMPLE_ROW,
    BatchTooLarge,
    FeatureRow,
    RowsInvalid,
    parse_csv_rows,
    row_values,
    validate_rows,
)
from inference.dependencies import RuntimeDep, ServedModelDep
from inference.runtime import ServingRuntime
from inference.schemas import BatchPrediction, ErrorMessage, Prediction

router = APIRouter(tags=["predictions"])

BYTES_PER_ROW = 2048
"""Generous upper bound of one row's encoding; with the row limit it caps a request body's size."""

TYPED_ROW = {name: int(value) if value.isdigit() else value for name, value in EXAMPLE_ROW.items()}
NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorMessage, "description": "No model loaded yet (no champion), and why."}
}

RowBody = Annotated[
    FeatureRow,
    Body(
        openapi_examples={
            "raw": {
                "summary": "As the data API sends it (strings)",
                "value": EXAMPLE_ROW,
            },
            "typed": {"summary": "With numbers", "value": TYPED_ROW},
        }
    ),
]

CSV_EXAMPLE = ",".join(FEATURE_NAMES) + "\n" + ",".join(EXAMPLE_ROW[name] for name in FEATURE_NAMES) + "\n"


@router.post(
    "/predict",
    summary="Predict one row",
    response_model=Prediction,
    responses=NOT_READY,
)
async def predict(row: RowBody, runtime: RuntimeDep, model: ServedModelDep) -> Response:
    """Cover type of one observation with the probability of every class.

    Concurrent calls are coalesced into one model call (micro-batching), so throughput grows with
    concurrency while a lone request is predicted at once.
    """
    probabilities = await runtime.batcher.predict_proba(model, [row_values(row)])
    rows = _row_predictions(runtime, model, probabilities)
    return _json_response({**_identity(model), **rows[0]})


@router.post(
    "/predict/batch",
    summary="Predict many rows (JSON list or CSV)",
    response_model=BatchPrediction,
    responses={
        **NOT_READY,
        413: {"model": ErrorMessage, "description": "More rows (or bytes) than the configured limit."},
        415: {"model": ErrorMessage, "description": "Neither application/json nor text/csv."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A JSON list of rows, or a CSV file whose header names the 12 features "
            "(any order; a Cover_Type column is ignored). The row limit is ANCORA_INFERENCE_BATCH_MAX_ROWS.",
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": {"$ref": "#/components/schemas/FeatureRow"}},
                    "example": [EXAMPLE_ROW, TYPED_ROW],
                },
                "text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE},
            },
        }
    },
)
async def predict_batch(request: Request, runtime: RuntimeDep, model: ServedModelDep) -> Response:
    """Predictions in input order, all from one model version."""
    limit = runtime.settings.inference_batch_max_rows
    body = await _read_body(request, max_bytes=limit * BYTES_PER_ROW)
    media_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    try:
        if media_type == "text/csv":
            values = parse_csv_rows(_decode(body), limit)
        elif media_type in ("application/json", "") or media_type.endswith("+json"):
            values = validate_rows(_json(body), limit)
        else:
            raise HTTPException(
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                detail=f"send application/json or text/csv, not {media_type}",
            )
    except BatchTooLarge as error:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=str(error)) from None
    except RowsInvalid as error:
        raise RequestValidationError(error.errors) from None
    probabilities = await runtime.batcher.predict_proba(model, values)
    predictions = _row_predictions(runtime, model, probabilities)
    return _json_response({**_identity(model), "count": len(predictions), "predictions": predictions})


def _json_response(answer: dict[str, Any]) -> Response:
    """Serialized by pydantic-core directly: the shape is the declared response model, and skipping
    FastAPI's re-validation of it saves a large share of a single-row request's CPU time."""
    return Response(pydantic_core.to_json(answer), media_type="application/json")


def _identity(model: ServedModel) -> dict[str, Any]:
    return {"model_name": model.ref.name, "model_version": model.ref.version, "run_id": model.ref.run_id}


def _row_predictions(
    runtime: ServingRuntime, model: ServedModel, probabilities: np.ndarray[Any, Any]
) -> list[dict[str, Any]]:
    winners = probabilities.argmax(axis=1)
    runtime.metrics.count_predictions(model, winners)
    labels = [str(label) for label in model.classes]
    return [
        {
            "prediction": model.classes[winner],
            "class_name": model.class_names[winner],
            "probabilities": dict(zip(labels, row, strict=True)),
        }
        for winner, row in zip(winners.tolist(), probabilities.tolist(), strict=True)
    ]


async def _read_body(request: Request, max_bytes: int) -> bytes:
    """Read at most ``max_bytes``, so an oversized upload is refused before it fills memory."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, detail=f"the body is larger than {max_bytes} bytes"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE, detail=f"the body is larger than {max_bytes} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RowsInvalid(
            [{"type": "encoding", "loc": ("body",), "msg": f"The body is not UTF-8: {error}", "input": None}]
        ) from None


def _json(body: bytes) -> Any:
    try:
        return pydantic_core.from_json(body)
    except ValueError as error:
        raise RowsInvalid(
            [{"type": "json_invalid", "loc": ("body",), "msg": f"Invalid JSON: {error}", "input": None}]
        ) from None
