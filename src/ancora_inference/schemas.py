"""Response bodies of the inference API, as they appear in the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    request_id: str = Field(
        description="Id of this request (the caller's X-Request-ID when it is a plain token, else a new "
        "one); the prediction log keeps it. Also in the X-Request-ID response header.",
        examples=["5f0c2a9e4b7d4c1e9a3f6b2d8c0e1f47"],
    )


class Prediction(RowPrediction, ModelIdentity):
    """One row's prediction and the exact model version that made it."""


class BatchPrediction(ModelIdentity):
    """Predictions in input order, all made by the one version named here."""

    count: int = Field(description="Number of rows predicted.")
    predictions: list[RowPrediction]


class EngineParity(BaseModel):
    rows: int = Field(description="Rows compared: the frozen evaluation set plus probe rows.")
    label_agreement: float = Field(description="Share of rows whose predicted class is identical.")
    max_probability_diff: float = Field(description="Largest difference of any class probability.")
    label_agreement_min: float = Field(description="Threshold the label agreement must reach.")
    probability_tolerance: float = Field(description="Threshold the probability difference must stay under.")
    passed: bool


class EngineStatus(BaseModel):
    """Which engine answers a call, from the version's compile report (docs/inference.md, Engines)."""

    serving: Literal["onnxruntime", "scikit-learn", "onnxruntime+scikit-learn"] = Field(
        description="'onnxruntime+scikit-learn': the compiled model below the crossover, scikit-learn "
        "from it on; 'scikit-learn' alone when the version was not compiled or failed parity."
    )
    compile_status: Literal["compiled", "parity_failed", "failed", "not_compiled"]
    reason: str = Field(description="Why this engine serves (or why the compiled one does not).")
    compiled_below_rows: int | None = Field(
        description="The crossover: calls of fewer rows run on ONNX Runtime, larger ones on "
        "scikit-learn; null: ONNX Runtime takes every call (or none, when it does not serve)."
    )
    compile_seconds: float | None = Field(description="Conversion time at registration.")
    parity: EngineParity | None = Field(description="Agreement with scikit-learn, checked at registration.")
    method: str = Field(description="How the pipeline was converted.")
    versions: dict[str, str] = Field(description="Library versions that compiled it.")


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
    engine: EngineStatus | None = Field(default=None, description="Which engine serves the version.")


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


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where: 'body', then the row index in a batch, then the field.")
    msg: str
    type: str
    input: Any = None


class InvalidInput(BaseModel):
    """422: FastAPI's validation error format, also for the bodies the prediction handlers read raw."""

    detail: list[FieldError]


DISPATCH_EXAMPLE: dict[str, Any] = {
    "id": "20261123T110000Z-5f3a9c1e",
    "dag_run_id": "scheduled__2026-11-23T11:00:00+00:00",
    "started_at": "2026-11-23T11:00:01.204000Z",
    "ended_at": "2026-11-23T11:00:06.912000Z",
    "model_name": "covertype",
    "model_version": "3",
    "rows_read": 100000,
    "rows_predicted": 99990,
    "rows_invalid": 10,
    "rows_written": 99990,
    "state": "succeeded",
    "error": None,
    "heartbeat_at": "2026-11-23T11:00:06.912000Z",
}


class Dispatch(BaseModel):
    """One run of batch scoring over the datalake."""

    model_config = ConfigDict(json_schema_extra={"examples": [DISPATCH_EXAMPLE]})

    id: str = Field(description="Dispatch id; also written to the marker column of every row it handled.")
    dag_run_id: str | None = Field(description="Airflow run of covertype_dispatch, when Airflow started it.")
    started_at: datetime = Field(description="When the dispatch started (UTC).")
    ended_at: datetime | None = Field(description="When it finished or failed; null while running.")
    model_name: str | None = Field(description="Registered model that scored; null if none could be loaded.")
    model_version: str | None = Field(description="Registry version of the champion that scored.")
    rows_read: int = Field(description="Rows read from the datalake (awaiting a prediction).")
    rows_predicted: int = Field(description="Rows that passed the contract and were predicted.")
    rows_invalid: int = Field(description="Rows refused by the contract (reported per row, not predicted).")
    rows_written: int = Field(
        description="Predictions written back (rows that already had one are left alone)."
    )
    state: Literal["running", "succeeded", "failed"]
    error: str | None = Field(description="Why the dispatch failed.")
    heartbeat_at: datetime | None = Field(
        default=None,
        description="Last sign of life while it ran; a running dispatch whose heartbeat stopped is "
        "marked failed by the next one.",
    )


class DispatchList(BaseModel):
    start: datetime = Field(description="Start of the window (dispatches that started at or after it).")
    end: datetime = Field(description="End of the window.")
    dispatches: list[Dispatch] = Field(description="Newest first.")


class DispatchEvent(BaseModel):
    event: Literal["started", "collected", "predicted", "persisted", "finished", "failed"] = Field(
        examples=["persisted"]
    )
    at: datetime
    detail: str | None = Field(examples=["batch 2: 10000 predictions written"])


class DispatchPrediction(BaseModel):
    row_key: str = Field(description="The row's key in the datalake table.", examples=["10042"])
    predicted_class: int | None = Field(
        description="Predicted Cover_Type; null for an invalid row.", examples=[2]
    )
    class_name: str | None = Field(examples=["Lodgepole Pine"])
    status: Literal["ok", "invalid"]
    error: str | None = Field(
        description="What is wrong with an invalid row, field by field.",
        examples=["Elevation: Input should be less than or equal to 5000 (got 99999)"],
    )


class DispatchDetail(Dispatch):
    """A dispatch with its event timeline and each row's prediction, in reading order."""

    events: list[DispatchEvent]
    predictions: list[DispatchPrediction]


class DatalakeStatus(BaseModel):
    """Whether the datalake answers: a connection and a count of the rows awaiting a prediction."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "ok": True,
                    "table": "covertype_observations",
                    "latency_ms": 3.2,
                    "pending_rows": 1200,
                    "error": None,
                },
                {
                    "ok": False,
                    "table": "covertype_observations",
                    "latency_ms": None,
                    "pending_rows": None,
                    "error": "counting pending rows of mysql+pymysql://ancora:***@lake:3306/lake table "
                    "covertype_observations: OperationalError: "
                    "(2003, \"Can't connect to MySQL server on 'lake'\")",
                },
            ]
        }
    )

    ok: bool
    table: str = Field(description="The configured table (ANCORA_DATALAKE_TABLE).")
    latency_ms: float | None = Field(description="Time to connect and count; null when it failed.")
    pending_rows: int | None = Field(description="Rows awaiting a prediction; null when the check failed.")
    error: str | None = Field(description="Why the datalake could not be reached or queried.")
