"""Serving: the champion loaded from the registry, the inference API, and dispatches (batch scoring
of a datalake), the two faces of the `serve` role."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, StringConstraints, field_validator, model_validator
from pydantic_settings import NoDecode

from ancora.config.base import derived, json_text
from ancora.config.training import RegistrySettings
from ancora.schema import FEATURE_NAMES

ColumnName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class ModelSettings(RegistrySettings):
    """Which registered version is served and how it is loaded (the inference API and dispatches)."""

    serving_alias: str = Field(
        default="champion", description="Registry alias the inference API serves (of registered_model_name)."
    )
    serving_n_jobs: int = Field(
        default=1,
        ge=1,
        description="n_jobs of the served estimator; 1 avoids a thread start-up per call on small batches.",
    )
    registry_timeout_seconds: int = Field(
        default=5, ge=1, description="HTTP timeout of the inference API's registry calls (MLflow client)."
    )
    registry_max_retries: int = Field(
        default=1, ge=0, description="Retries of a failed registry call before the check counts as failed."
    )
    model_cache_dir: Path = derived(
        "state_dir/inference/models",
        lambda data: data["state_dir"] / "inference" / "models",
        "Local copy of served model artifacts; default: state_dir/inference/models.",
    )
    serving_compiled: bool = Field(
        default=True,
        description="Serve a version's compiled engine (ONNX Runtime) below its crossover when it passed "
        "parity; false: scikit-learn answers every call (the inference API and dispatches).",
    )


class DispatchSettings(ModelSettings):
    """Dispatches: scheduled batch scoring over a datalake (`ancora dispatch`, covertype_dispatch)."""

    datalake_url: str = derived(
        "a demo SQLite file under state_dir",
        lambda data: f"sqlite:///{data['state_dir'] / 'datalake' / 'datalake.db'}",
        "SQLAlchemy URL of the datalake dispatches score (mysql+pymysql, postgresql+psycopg, "
        "sqlite, mssql+pyodbc, ...); default: a demo SQLite file under state_dir.",
    )
    datalake_table: str = Field(
        default="covertype_observations",
        description="Datalake table holding the rows to score; schema.table for another schema.",
    )
    datalake_key_column: str = Field(
        default="id", description="Unique key column of the datalake table; rows are read and updated by it."
    )
    datalake_feature_columns: Annotated[dict[str, ColumnName], NoDecode, json_text(empty={})] = Field(
        default_factory=dict,
        description="JSON map from a contract feature name to the table's column, for names that differ; "
        "empty: the contract's names.",
    )
    datalake_prediction_column: str = Field(
        default="predicted_cover_type",
        description="Integer column the predicted Cover_Type goes to; NULL means awaiting a prediction.",
    )
    datalake_marker_column: str = Field(
        default="dispatch_id",
        description="Text column set to the dispatch id on every row a dispatch handles (invalid rows too, "
        "so they are not retried until cleared); empty: no marker, invalid rows are retried every dispatch.",
    )
    datalake_connect_timeout_seconds: int = Field(
        default=5, ge=1, description="Connect timeout to the datalake (dispatches and GET /datalake/status)."
    )
    dispatch_schedule: str = Field(default="0 * * * *", description="Cron schedule of covertype_dispatch.")
    dispatch_batch_rows: int = Field(
        default=10_000,
        ge=1,
        le=100_000,
        description="Rows read, scored and written back per batch (one datalake transaction each).",
    )
    dispatch_n_jobs: int = Field(
        default=2, ge=1, description="n_jobs of the champion while a dispatch scores (large batches gain)."
    )
    dispatch_events_db_url: str = derived(
        "SQLite under state_dir",
        lambda data: f"sqlite:///{data['state_dir'] / 'dispatch' / 'events.db'}",
        "SQLAlchemy URL of the dispatch events database (dispatches, events, predictions); "
        "default: SQLite under state_dir.",
    )
    dispatch_history_hours: float = Field(
        default=24.0, gt=0, description="Default time window of GET /dispatches, back from now, in hours."
    )
    dispatch_heartbeat_seconds: float = Field(
        default=15.0, gt=0, description="Seconds between the heartbeats a running dispatch records."
    )
    dispatch_stale_after_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A running dispatch without a heartbeat for this long is marked failed by the next "
        "dispatch (at once when its process on the same host is gone); at least 3 heartbeats.",
    )

    @field_validator("datalake_feature_columns")
    @classmethod
    def _known_features(cls, mapping: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(mapping) - set(FEATURE_NAMES))
        if unknown:
            raise ValueError(
                f"unknown features: {', '.join(unknown)}; the features are {', '.join(FEATURE_NAMES)}"
            )
        return mapping

    @model_validator(mode="after")
    def _stale_after_several_heartbeats(self) -> DispatchSettings:
        if self.dispatch_stale_after_seconds < 3 * self.dispatch_heartbeat_seconds:
            raise ValueError(
                "ANCORA_DISPATCH_STALE_AFTER_SECONDS must be at least 3 times "
                "ANCORA_DISPATCH_HEARTBEAT_SECONDS, or a live dispatch that missed a beat is taken for dead"
            )
        return self


class ServingSettings(DispatchSettings):
    """The inference API (`ancora serve`): the `serve` role's own class."""

    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for state-changing admin endpoints; no default on purpose."
    )
    model_poll_interval_seconds: float = Field(
        default=5.0, gt=0, le=300, description="Seconds between the inference API's checks of the alias."
    )
    inference_batch_max_rows: int = Field(
        default=10_000, ge=1, description="Most rows one /predict/batch request may carry (more: 413)."
    )
    serving_microbatch_max_rows: int = Field(
        default=256, ge=1, description="Most concurrent single-row requests coalesced into one predict call."
    )

    # --- Inference API throughput (src/ancora/serving/worker.py, batcher.py; benchmarks/serve.py) ---
    serving_http_workers: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Processes of the inference API answering HTTP on its one port, each with its own copy "
        "of the model (memory grows with each); /metrics sums them all and a reload reaches every one. "
        "One process handles HTTP on one core: on 2 cores shared with the load generator, 2 answered "
        "1.2-1.4x the requests of 1 at concurrency 32, with a p99 no better (docs/inference.md).",
    )
    serving_predict_worker: bool = Field(
        default=True,
        description="Run predict_proba in a child process of the inference API, so HTTP handling and "
        "prediction use separate cores; false: in a thread of the API process.",
    )
    serving_predict_workers: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Prediction worker processes (with serving_predict_worker), each with its own copy "
        "of the model; more than 1 pays off only with cores to spare (on 2 cores, 1 is faster).",
    )
    serving_microbatch_max_wait_ms: float = Field(
        default=10.0,
        ge=0,
        le=1000,
        description="Longest wait, right after a predict call, for the rows of the callers it answered "
        "(capped at half that call's time; an idle service never waits); 0: take only what is queued. "
        "Versions served by their compiled engine never wait (measured: waiting only added latency).",
    )
    serving_compiled_in_process: bool = Field(
        default=True,
        description="Run the calls the compiled engine takes in a thread of the API process (ONNX Runtime "
        "releases the GIL), without the hop to the prediction worker; false: the worker runs them too.",
    )

    # --- Prediction log (src/ancora/monitoring/prediction_log.py) ---
    prediction_log_enabled: bool = Field(
        default=True,
        description="Record every online prediction (features, class, probability, latency, user) in the "
        "events database, off the request path.",
    )
    prediction_log_sample_rate: float = Field(
        default=1.0, ge=0, le=1, description="Share of prediction requests the log keeps (per request)."
    )
    prediction_log_queue_rows: int = Field(
        default=100_000,
        ge=1,
        description="Most rows waiting to be written; a request arriving at a full queue is not logged "
        "(counted in /metrics), never delayed.",
    )
    prediction_log_write_rows: int = Field(
        default=250,
        ge=1,
        description="Most rows the prediction log writes in one transaction. The writer holds the GIL "
        "for part of each write, a pause for the event loop: 2,000-row writes raised the p99 latency at "
        "concurrency 32 by tens of milliseconds.",
    )

    # --- Security limits (docs/security.md; src/ancora/http_server.py, inference/limits.py) ---
    inference_header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Time a client has to send a request's line and headers to the inference API "
        "(slowloris bound); past it the connection is closed.",
    )
    inference_body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Time a client has to send a request body to the inference API once the headers "
        "are in; past it the answer is 408.",
    )
