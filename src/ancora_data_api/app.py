"""HTTP face of the data API simulator: the course's routes, payloads and 400 messages.

The logic lives in ``ancora.simulator``; this module only maps it onto FastAPI.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from ancora.config import Settings
from ancora.schema import COLUMN_NAMES
from ancora.simulator import (
    EXHAUSTED_DETAIL,
    INTERNAL_ERROR_BODY,
    INVALID_GROUP_DETAIL,
    REFERENCE,
    ROOT_BODY,
    BatchSimulator,
    EmptySliceError,
    SimulatorError,
)

log = logging.getLogger(__name__)

MODE_DESCRIPTIONS = {
    REFERENCE: (
        "**Mode `reference`** (as the course's server really does): the data set is cut into 10 slices "
        "and group N samples slice N (0-based) in every batch, so the same rows come back batch after "
        "batch; the batch number is only a counter. Group 10's slice is empty and its requests answer "
        "HTTP 500."
    ),
    "intended": (
        "**Mode `intended`** (what the course's comments describe): batch B samples the B-th slice, so "
        "every batch brings fresh rows."
    ),
}


def describe(mode: str) -> str:
    return f"""
Simulator of the course's batch data API (MLOps PUJ, project 2), quirks included.

{MODE_DESCRIPTIONS[mode]} Set `ANCORA_SIMULATOR_MODE` to choose.

- A group's first `GET /data` starts batch 1; the batch advances when more than the rotation period
  has passed since the last advance.
- Every request answers a random tenth of a slice, so two requests overlap.
- Once the last batch has been served, `GET /data` answers 400 until `GET /restart_data_generation`.
- Every value is a string; columns in this order: {", ".join(COLUMN_NAMES)}.
"""


GROUP_DESCRIPTION = "Group number assigned by the course (1-10)."

TAGS = [
    {"name": "info", "description": "Service information and health."},
    {"name": "data", "description": "Random portions of the current batch of a group."},
    {"name": "admin", "description": "Start a group's collection over."},
]


class BatchResponse(BaseModel):
    group_number: int = Field(description="The requested group (1-10).")
    batch_number: int = Field(description="The group's current batch, starting at 1.")
    data: list[list[str]] = Field(
        description="Random tenth of the served slice; each row is 13 strings, label Cover_Type last."
    )


class ErrorResponse(BaseModel):
    detail: str = Field(description="The reference server's message.")


GroupNumber = Annotated[int, Query(description=GROUP_DESCRIPTION, examples=[1])]
"""A plain ``int`` as in the reference: a value that is not an integer gets FastAPI's own 422, and an
integer outside 1..10 the reference's 400."""

BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": (
            f'Invalid group ("{INVALID_GROUP_DETAIL}") or all batches consumed ("{EXHAUSTED_DETAIL}").'
        ),
    }
}
EMPTY_SLICE: dict[int | str, dict[str, Any]] = {
    500: {
        "description": (
            f'Reference mode, a group whose slice is empty (group 10): plain text "{INTERNAL_ERROR_BODY}".'
        ),
        "content": {"text/plain": {}},
    }
}


def create_app(settings: Settings, clock: Callable[[], float] = time.time) -> FastAPI:
    """Build the simulator app; tests inject ``clock`` to move time without sleeping."""
    simulator = BatchSimulator.from_settings(settings, clock)
    app = FastAPI(
        title="Ancora data API simulator",
        version="1.0.0",
        description=describe(simulator.mode),
        openapi_tags=TAGS,
    )
    app.state.simulator = simulator

    @app.get("/", tags=["info"], summary="Service banner", description="The reference's root answer.")
    def root() -> dict[str, str]:
        return ROOT_BODY

    @app.get("/health", tags=["info"], summary="Liveness check for the launcher and compose.")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/data",
        tags=["data"],
        summary="Random portion of the group's rows",
        description=(
            "Starts batch 1 on a group's first request and advances the batch once more than "
            f"{settings.simulator_rotation_seconds:g} s have passed since the last advance. "
            + MODE_DESCRIPTIONS[simulator.mode]
        ),
        response_model=BatchResponse,
        responses={**BAD_REQUEST, **EMPTY_SLICE},
    )
    def read_data(group_number: GroupNumber) -> BatchResponse | Response:
        try:
            sample = simulator.sample(group_number)
        except SimulatorError as refused:
            raise HTTPException(status_code=400, detail=refused.detail) from refused
        except EmptySliceError as empty:
            # The reference's random.sample raises and Starlette answers its plain-text 500.
            log.warning("answering HTTP 500 as the reference does: %s", empty)
            return PlainTextResponse(INTERNAL_ERROR_BODY, status_code=500)
        return BatchResponse(
            group_number=sample.group_number, batch_number=sample.batch_number, data=sample.rows
        )

    @app.get(
        "/restart_data_generation",
        tags=["admin"],
        summary="Start a group's collection over",
        description='Resets the group to "not started"; its next `/data` request starts batch 1 again.',
        responses=BAD_REQUEST,
    )
    def restart_data_generation(group_number: GroupNumber) -> list[str]:
        try:
            simulator.restart(group_number)
        except SimulatorError as refused:
            raise HTTPException(status_code=400, detail=refused.detail) from refused
        return ["ok"]

    return app
