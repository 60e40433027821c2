"""Dispatch history and the datalake's status, read from the events database and the datalake.

Read-only, so no auth, like /models. Handlers are plain ``def``: they run blocking database calls,
which FastAPI moves to its thread pool, away from the prediction hot path.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import pydantic_core
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError

from ancora.config import ServingSettings
from ancora.dispatch.datalake import Datalake, DatalakeConfigError, describe_error, open_datalake
from ancora.dispatch.events import DispatchRecord, EventsStore, open_events_store
from ancora.schema import COVER_TYPE_NAMES
from ancora_inference.dependencies import RuntimeDep
from ancora_inference.schemas import DatalakeStatus, DispatchDetail, DispatchList, ErrorMessage

router = APIRouter(tags=["dispatches"])

_opening = threading.Lock()
"""Opening the events store runs its migrations: once per app, not once per concurrent request."""

EVENTS_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorMessage, "description": "The dispatch events database cannot be reached."}
}


def _events(request: Request, settings: ServingSettings) -> EventsStore:
    store: EventsStore | None = getattr(request.app.state, "dispatch_events", None)
    if store is None:
        with _opening:
            store = getattr(request.app.state, "dispatch_events", None)
            if store is None:
                try:
                    store = open_events_store(settings.dispatch_events_db_url)
                except SQLAlchemyError as error:
                    raise _events_down(error) from None
                request.app.state.dispatch_events = store
    return store


def _events_down(error: SQLAlchemyError) -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        detail=f"the dispatch events database is unavailable: {describe_error(error)}",
    )


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


EARLIEST = datetime.min.replace(tzinfo=UTC)


def _in_utc(field: str, value: datetime) -> datetime:
    """The moment in UTC; a date at the edge of the calendar that cannot be moved there is a 422."""
    try:
        return _as_utc(value)
    except OverflowError:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", field),
                    "msg": f"{field} ({value.isoformat()}) is outside the supported range of dates",
                    "input": value.isoformat(),
                }
            ]
        ) from None


def _dispatch(record: DispatchRecord) -> dict[str, Any]:
    values = dict(record.__dict__)
    for internal in ("datalake_table", "host", "pid", "pid_start_ticks"):
        values.pop(internal)
    return values


@router.get(
    "/dispatches",
    summary="Dispatches in a time window",
    response_model=DispatchList,
    responses={
        422: {"description": "A date that does not parse, or start after end (the field is named)."},
        **EVENTS_DOWN,
    },
)
def list_dispatches(
    request: Request,
    runtime: RuntimeDep,
    start: Annotated[
        datetime | None,
        Query(
            description="ISO 8601; dispatches that started at or after it. Default: end minus "
            "ANCORA_DISPATCH_HISTORY_HOURS. Without a time zone: UTC.",
            examples=["2026-11-23T00:00:00Z"],
        ),
    ] = None,
    end: Annotated[
        datetime | None,
        Query(description="ISO 8601; default: now.", examples=["2026-11-24T00:00:00Z"]),
    ] = None,
    state: Annotated[
        Literal["running", "succeeded", "failed"] | None, Query(description="Only dispatches in this state.")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=10_000, description="Most dispatches returned (newest first).")
    ] = 1000,
) -> DispatchList:
    """Dispatches that started inside the window, newest first, with their counts and state."""
    settings = runtime.settings
    end_at = _in_utc("end", end) if end is not None else datetime.now(UTC)
    if start is not None:
        start_at = _in_utc("start", start)
    else:
        window = timedelta(hours=settings.dispatch_history_hours)
        start_at = end_at - window if end_at - EARLIEST >= window else EARLIEST
    if start_at > end_at:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "start"),
                    "msg": f"start ({start_at.isoformat()}) is after end ({end_at.isoformat()})",
                    "input": start.isoformat() if start is not None else None,
                }
            ]
        )
    store = _events(request, settings)
    try:
        records = store.list_dispatches(start_at, end_at, state, limit)
    except SQLAlchemyError as error:
        raise _events_down(error) from None
    return DispatchList.model_validate(
        {"start": start_at, "end": end_at, "dispatches": [_dispatch(record) for record in records]}
    )


@router.get(
    "/dispatches/{dispatch_id}",
    summary="One dispatch with its events and predictions",
    response_model=DispatchDetail,
    responses={404: {"model": ErrorMessage, "description": "No dispatch has this id."}, **EVENTS_DOWN},
)
def get_dispatch(dispatch_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """The dispatch, its event timeline, and every row it handled with its prediction or its error."""
    store = _events(request, runtime.settings)
    try:
        detail = store.get(dispatch_id)
    except SQLAlchemyError as error:
        raise _events_down(error) from None
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no dispatch with id {dispatch_id!r}")
    body = {
        **_dispatch(detail.dispatch),
        "events": [event.__dict__ for event in detail.events],
        "predictions": [
            {
                "row_key": prediction.row_key,
                "predicted_class": prediction.predicted_class,
                "class_name": COVER_TYPE_NAMES.get(prediction.predicted_class)
                if prediction.predicted_class is not None
                else None,
                "status": prediction.status,
                "error": prediction.error,
            }
            for prediction in detail.predictions
        ],
    }
    # Serialized by pydantic-core directly: a dispatch may hold 100,000 predictions, and the shape is
    # the declared response model already.
    return Response(pydantic_core.to_json(body), media_type="application/json")


def _datalake(request: Request, settings: ServingSettings) -> Datalake:
    datalake: Datalake | None = getattr(request.app.state, "datalake", None)
    if datalake is None:
        datalake = open_datalake(settings)
        request.app.state.datalake = datalake
    return datalake


@router.get("/datalake/status", summary="Whether the datalake answers", response_model=DatalakeStatus)
def datalake_status(request: Request, runtime: RuntimeDep) -> DatalakeStatus:
    """Connects and counts the rows awaiting a prediction in the configured table. Always 200: a datalake
    that is down answers ``ok: false`` with the reason."""
    settings = runtime.settings
    try:
        datalake = _datalake(request, settings)
    except DatalakeConfigError as error:
        return DatalakeStatus(
            ok=False, table=settings.datalake_table, latency_ms=None, pending_rows=None, error=str(error)
        )
    return DatalakeStatus.model_validate(datalake.status().__dict__)
