"""Response bodies of the inference API, as they appear in the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

PROBABILITIES_EXAMPLE = {"1": 0.12, "2": 0.81, "3": 0.0, "4": 0.0, "5": 0.05, "6": 0.01, "7": 0.01}


class RowPrediction(BaseModel):
    prediction: int = Field(description="Predicted Cover_Type label (1..7).", examples=[2])
    class_name: str = Field(description="Name of the predicted cover type.", examples=["Lodgepole Pine"])
    probabilities: dict[str, float] = Field(
        description="Probability of every class the model knows, keyed by Cover_Type label.",
        examples=[PROBABILITIES_EXAMPLE],
    )


class ModelIdentity(BaseModel):
    model_name: str = Field(description="Registered model name.", examples=["covertype"])
    model_version: str = Field(description="Registry version that answered.", examples=["3"])
    run_id: str | None = Field(description="MLflow run that trained that version.")


class Prediction(RowPrediction, ModelIdentity):
    """One row's prediction and the exact model version that made it."""


class BatchPrediction(ModelIdentity):
    """Predictions in input order, all made by the one version named here."""

    count: int = Field(description="Number of rows predicted.")
    predictions: list[RowPrediction]


class ModelStatus(BaseModel):
    name: str = Field(description="Registered model name the service follows.")
    alias: str = Field(description="Registry alias the service follows.")
    registry_uri: str = Field(description="MLflow registry (tracking server) asked.")
    status: Literal["serving", "waiting"] = Field(description="'waiting' until a version is loaded.")
    version: str | None = Field(description="Served registry version.")
    run_id: str | None = Field(description="Run that trained the served version.")
    source: str | None = Field(description="Artifact source of the served version.")
    loaded_at: datetime | None = Field(description="When the served version was loaded.")
    load_seconds: float | None = Field(description="How long downloading and loading that version took.")
    poll_interval_seconds: float = Field(description="Seconds between checks of the alias.")
    last_check_at: datetime | None = Field(description="When the alias was last checked.")
    last_check_error: str | None = Field(
        description="Why the latest check failed; the previous version keeps serving meanwhile."
    )


class Ready(BaseModel):
    status: Literal["ready"]
    model_version: str
    last_check_error: str | None = Field(
        description="Why the latest check failed (the loaded version keeps serving)."
    )


class Health(BaseModel):
    status: Literal["ok"]


class ReloadResult(BaseModel):
    changed: bool = Field(description="True when the check swapped in another version.")
    model_version: str | None = Field(description="Version served after the check.")
    error: str | None = Field(description="Why the check failed, if it did.")


class ErrorMessage(BaseModel):
    detail: str
