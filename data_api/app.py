"""HTTP face of the data API simulator: the course's routes, payloads and 400 messages.

The logic lives in ``ancora.simulator``; this module only maps it onto FastAPI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ancora.config import Settings
from ancora.schema import COLUMN_NAMES
from ancora.simulator import (
    EXHAUSTED_DETAIL,
    INVALID_GROUP_DETAIL,
    ROOT_BODY,
    BatchSimulator,
    SimulatorError,
)

DESCRIPTION = f"""
Simulator of the course's batch data API (MLOps PUJ, project 2), quirks included.

- The covertype sample is split into consecutive batches. A group's first `GET /data` starts
  batch 1; the batch advances when more than the rotation period has passed since the last advance.
- Every request answers a random tenth of the current batch, so two requests in one window overlap.
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
        description="Random tenth of the current batch; each row is 13 strings, label Cover_Type last."
    )


class ErrorResponse(BaseModel):
    detail: str = Field(description="The reference server's message.")


GroupNumber = Annotated[int, Query(ge=1, le=10, description=GROUP_DESCRIPTION, examples=[1])]

BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": (
            f'Invalid group ("{INVALID_GROUP_DETAIL}") or all batches consumed ("{EXHAUSTED_DETAIL}").'
        ),
    }
}


def create_app(settings: Settings, clock: Callable[[], float] = time.time) -> FastAPI:
    """Build the simulator app; tests inject ``clock`` to move time without sleeping."""
    simulator = BatchSimulator.from_settings(settings, clock)
    app = FastAPI(
        title="Ancora data API simulator",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
    )
    app.state.simulator = simulator

    @app.exception_handler(RequestValidationError)
    async def invalid_group(request: Request, error: RequestValidationError) -> Response:
        """The reference answers 400 for any bad group number, not FastAPI's 422."""
        if any(issue.get("loc", ())[-1:] == ("group_number",) for issue in error.errors()):
            return JSONResponse(status_code=400, content={"detail": INVALID_GROUP_DETAIL})
        return await request_validation_exception_handler(request, error)

    @app.get("/", tags=["info"], summary="Service banner", description="The reference's root answer.")
    def root() -> dict[str, str]:
        return ROOT_BODY

    @app.get("/health", tags=["info"], summary="Liveness check for the launcher and compose.")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/data",
        tags=["data"],
        summary="Random portion of the group's current batch",
        description=(
            "Starts batch 1 on a group's first request and advances the batch once more than "
            f"{settings.simulator_rotation_seconds:g} s have passed since the last advance."
        ),
        response_model=BatchResponse,
        responses=BAD_REQUEST,
    )
    def read_data(group_number: GroupNumber) -> BatchResponse:
        try:
            sample = simulator.sample(group_number)
        except SimulatorError as refused:
            raise HTTPException(status_code=400, detail=refused.detail) from refused
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
