"""Stand-ins for the stack's services at the HTTP boundary, for the Streamlit app's AppTests.

Each stand-in is a small FastAPI app served by a real uvicorn server on a free loopback port, in a
thread of the test process. The app under test reaches them through its real client modules over
real HTTP, so everything from the URL in the settings to the parsing of the answer is exercised; only
what stands behind the HTTP API is scripted. The answers follow the shapes of the real APIs
(Airflow REST v2, MLflow REST 2.0, the inference API and its dispatch contract); the e2e browser
test and tests/integration/test_ui_clients.py check the clients against the real servers.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from ancora.schema import COVER_TYPE_NAMES, FEATURE_NAMES
from tests.support.simulator import free_port

AIRFLOW_PASSWORD = "fake-airflow-password"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


class ServedApp:
    """A FastAPI app on 127.0.0.1:<free port>, started in a thread and stopped on exit."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake service on {self.url} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


# --- inference API ---------------------------------------------------------------------------------


@dataclass
class InferenceState:
    serving: bool = True
    version: str = "3"
    dispatches: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    datalake: dict[str, Any] | None = None
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    """(method, path with query, body) of every call, for assertions on what the app sent."""


def probabilities(winner: int) -> dict[str, float]:
    return {str(label): (0.7 if label == winner else 0.05) for label in COVER_TYPE_NAMES}


def row_prediction(winner: int) -> dict[str, Any]:
    return {
        "prediction": winner,
        "class_name": COVER_TYPE_NAMES[winner],
        "probabilities": probabilities(winner),
    }


def inference_app(state: InferenceState) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        body = await request.body()
        query = f"?{request.url.query}" if request.url.query else ""
        state.requests.append((request.method, f"{request.url.path}{query}", body))
        return await call_next(request)

    def identity() -> dict[str, Any]:
        return {"model_name": "covertype", "model_version": state.version, "run_id": "run-best"}

    def not_ready() -> JSONResponse:
        return JSONResponse({"detail": "no version of covertype has the alias champion yet"}, status_code=503)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    def ready() -> Any:
        if not state.serving:
            return not_ready()
        return {"status": "ready", "model_version": state.version, "last_check_error": None}

    @app.get("/models")
    def models() -> dict[str, Any]:
        return {
            "name": "covertype",
            "alias": "champion",
            "registry_uri": "http://mlflow",
            "status": "serving" if state.serving else "waiting",
            "version": state.version if state.serving else None,
            "run_id": "run-best" if state.serving else None,
            "source": None,
            "loaded_at": iso(NOW) if state.serving else None,
            "load_seconds": 0.4 if state.serving else None,
            "poll_interval_seconds": 5.0,
            "last_check_at": iso(NOW),
            "last_check_error": None if state.serving else "no version of covertype has the alias champion",
            "engine": ENGINE if state.serving else None,
        }

    @app.post("/predict")
    async def predict(request: Request) -> Any:
        if not state.serving:
            return not_ready()
        row = await request.json()
        missing = [name for name in FEATURE_NAMES if name not in row]
        if missing:
            detail = [{"loc": ["body", name], "msg": "Field required", "type": "missing"} for name in missing]
            return JSONResponse({"detail": detail}, status_code=422)
        winner = 2 if int(row["Elevation"]) >= 2500 else 3
        return {**identity(), **row_prediction(winner)}

    @app.post("/predict/batch")
    async def predict_batch(request: Request) -> Any:
        if not state.serving:
            return not_ready()
        body = (await request.body()).decode("utf-8-sig")
        if request.headers.get("content-type", "").startswith("text/csv"):
            rows = list(csv.DictReader(io.StringIO(body)))
            absent = [name for name in FEATURE_NAMES if rows and name not in rows[0]]
            if absent:
                detail = [{"loc": ["body"], "msg": f"missing columns: {', '.join(absent)}", "type": "csv"}]
                return JSONResponse({"detail": detail}, status_code=422)
        else:
            rows = await request.json()
        predictions = [row_prediction(2 if int(row["Elevation"]) >= 2500 else 3) for row in rows]
        return {**identity(), "count": len(predictions), "predictions": predictions}

    @app.get("/dispatches")
    def dispatches(request: Request) -> Any:
        wanted = request.query_params.get("state")
        return {
            "start": request.query_params.get("start") or iso(NOW - timedelta(hours=24)),
            "end": request.query_params.get("end") or iso(NOW),
            "dispatches": [d for d in state.dispatches if not wanted or d["state"] == wanted],
        }

    @app.get("/dispatches/{dispatch_id}")
    def dispatch(dispatch_id: str) -> Any:
        if dispatch_id not in state.details:
            raise HTTPException(404, detail=f"no dispatch {dispatch_id}")
        return state.details[dispatch_id]

    @app.get("/datalake/status")
    def datalake() -> Any:
        if state.datalake is None:
            raise HTTPException(404, detail="Not Found")
        return state.datalake

    return app


def sample_dispatches() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Two dispatches as the contract describes them: one succeeded, one failed."""
    ok = {
        "id": "d-ok",
        "dag_run_id": "scheduled__2026-11-20T11:00:00+00:00",
        "started_at": iso(NOW - timedelta(hours=1)),
        "ended_at": iso(NOW - timedelta(hours=1) + timedelta(seconds=12)),
        "model_name": "covertype",
        "model_version": "3",
        "rows_read": 3,
        "rows_predicted": 2,
        "rows_invalid": 1,
        "rows_written": 2,
        "state": "succeeded",
        "error": None,
    }
    failed = {
        **ok,
        "id": "d-failed",
        "dag_run_id": "manual__2026-11-20T11:30:00+00:00",
        "started_at": iso(NOW - timedelta(minutes=30)),
        "ended_at": iso(NOW - timedelta(minutes=30) + timedelta(seconds=2)),
        "rows_read": 0,
        "rows_predicted": 0,
        "rows_invalid": 0,
        "rows_written": 0,
        "state": "failed",
        "error": "datalake unreachable: connection refused",
    }
    events = [
        {"event": "started", "at": ok["started_at"], "detail": None},
        {"event": "collected", "at": ok["started_at"], "detail": "3 rows awaiting a prediction"},
        {"event": "predicted", "at": ok["started_at"], "detail": "2 predicted, 1 invalid"},
        {"event": "persisted", "at": ok["ended_at"], "detail": "2 rows written"},
        {"event": "finished", "at": ok["ended_at"], "detail": None},
    ]
    predictions = [
        {
            "row_key": "17",
            "predicted_class": 2,
            "class_name": "Lodgepole Pine",
            "status": "ok",
            "error": None,
        },
        {"row_key": "18", "predicted_class": 1, "class_name": "Spruce/Fir", "status": "ok", "error": None},
        {
            "row_key": "19",
            "predicted_class": 0,
            "class_name": "",
            "status": "invalid",
            "error": "Slope: 120 is above 90",
        },
    ]
    details = {
        "d-ok": {**ok, "events": events, "predictions": predictions},
        "d-failed": {
            **failed,
            "events": [
                {"event": "started", "at": failed["started_at"], "detail": None},
                {"event": "failed", "at": failed["ended_at"], "detail": failed["error"]},
            ],
            "predictions": [],
        },
    }
    return [ok, failed], details


# --- MLflow ----------------------------------------------------------------------------------------


@dataclass
class MlflowState:
    versions: list[dict[str, Any]] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)


def _kv(mapping: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": value} for key, value in mapping.items()]


COMPILED_TAGS = {
    "serving_engine": "onnxruntime",
    "compile_status": "compiled",
    "compile_seconds": "3.210",
    "parity_rows": "4050",
    "parity_label_agreement": "1.000000",
    "parity_max_probability_diff": "6.9e-07",
    "crossover_rows": "2048",
}
ENGINE = {
    "serving": "onnxruntime+scikit-learn",
    "compile_status": "compiled",
    "reason": "ONNX Runtime serves calls of fewer than 2048 rows, scikit-learn larger ones",
    "compiled_below_rows": 2048,
    "compile_seconds": 3.21,
    "parity": {
        "rows": 4050,
        "label_agreement": 1.0,
        "max_probability_diff": 6.9e-07,
        "label_agreement_min": 0.999,
        "probability_tolerance": 0.0001,
        "passed": True,
    },
    "method": "skl2onnx, scaler folded into integer split thresholds",
    "versions": {"onnxruntime": "1.31.1"},
}
"""What /models answers for a compiled version (ancora_inference/routes/models.py)."""


def mlflow_run(run_id: str, name: str, metrics: dict[str, float], tags: dict[str, str]) -> dict[str, Any]:
    return {
        "info": {
            "run_id": run_id,
            "run_uuid": run_id,
            "experiment_id": "1",
            "run_name": name,
            "status": "FINISHED",
            "start_time": int(NOW.timestamp() * 1000),
            "end_time": int(NOW.timestamp() * 1000) + 60_000,
        },
        "data": {
            "metrics": [{"key": k, "value": v, "timestamp": 0, "step": 0} for k, v in metrics.items()],
            "params": _kv({"family": tags.get("ancora.family", "")}),
            "tags": _kv(tags),
        },
    }


def sample_registry(state: MlflowState) -> None:
    """Two versions as training registers them: v1 first champion, v2 kept (did not beat it)."""
    state.aliases = {"champion": "1", "challenger": "2"}
    for version, run, f1, decision, champion_f1 in (
        ("1", "train-1", "0.700000", "first", ""),
        ("2", "train-2", "0.702000", "kept", "0.700000"),
    ):
        state.versions.append(
            {
                "name": "covertype",
                "version": version,
                "creation_timestamp": int(NOW.timestamp() * 1000),
                "run_id": f"cand-{version}",
                "status": "READY",
                "description": f"Best candidate of training run {run}. Gate: {decision}.",
                "tags": _kv(
                    {
                        "run_id": run,
                        "family": "random_forest",
                        "macro_f1": f1,
                        "champion_macro_f1": champion_f1,
                        "gate_decision": decision,
                        "eval_set_version": "1",
                        **(COMPILED_TAGS if version == "2" else {}),
                    }
                ),
            }
        )
    reason = "challenger macro F1 0.7020 does not beat champion v1 macro F1 0.7000 + margin 0.0050 (= 0.7050)"
    state.runs["train-2"] = mlflow_run(
        "train-2",
        "train-20261120T110000Z",
        {
            "eval_random_forest_macro_f1": 0.702,
            "eval_random_forest_accuracy": 0.81,
            "eval_logistic_regression_macro_f1": 0.55,
            "eval_logistic_regression_accuracy": 0.7,
            "challenger_eval_macro_f1": 0.702,
            "champion_eval_macro_f1": 0.7,
        },
        {"ancora.role": "training", "ancora.gate.decision": "kept", "ancora.gate.reason": reason},
    )
    state.runs["train-1"] = mlflow_run(
        "train-1",
        "train-20261120T100000Z",
        {"eval_random_forest_macro_f1": 0.7, "challenger_eval_macro_f1": 0.7},
        {
            "ancora.role": "training",
            "ancora.gate.decision": "first",
            "ancora.gate.reason": "challenger macro F1 0.7000; no champion yet, so it becomes the first "
            "champion",
        },
    )
    children = []
    for index, (family, f1) in enumerate(
        (("random_forest", 0.73), ("random_forest", 0.71), ("logistic_regression", 0.56))
    ):
        run_id = f"cand-2-{index}"
        state.runs[run_id] = mlflow_run(
            run_id,
            f"{family}-{index:02d}",
            {
                "validation_macro_f1": f1,
                "validation_accuracy": f1 + 0.1,
                "validation_log_loss": 0.5,
                "fit_time_seconds": 3.0,
            },
            {"ancora.role": "candidate", "ancora.family": family, "mlflow.parentRunId": "train-2"},
        )
        children.append(run_id)
    state.children["train-2"] = children
    state.children["train-1"] = []


def mlflow_app(state: MlflowState) -> FastAPI:
    app = FastAPI()
    api = "/api/2.0/mlflow"

    def not_found(message: str) -> JSONResponse:
        return JSONResponse({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": message}, status_code=404)

    @app.get("/health")
    def health() -> Any:
        return JSONResponse("OK")

    @app.get(f"{api}/experiments/search")
    def experiments() -> dict[str, Any]:
        return {"experiments": [{"experiment_id": "1", "name": "covertype"}]}

    @app.get(f"{api}/registered-models/get")
    def registered_model(name: str) -> Any:
        if not state.versions:
            return not_found(f"Registered Model with name={name} not found")
        aliases = [{"alias": a, "version": v} for a, v in state.aliases.items()]
        return {"registered_model": {"name": name, "aliases": aliases}}

    @app.get(f"{api}/model-versions/search")
    def search_versions(filter: str = "", max_results: int = 100) -> dict[str, Any]:
        return {"model_versions": list(state.versions)}

    @app.get(f"{api}/runs/get")
    def get_run(run_id: str) -> Any:
        if run_id not in state.runs:
            return not_found(f"Run '{run_id}' not found")
        return {"run": state.runs[run_id]}

    @app.post(f"{api}/runs/search")
    async def search_runs(request: Request) -> dict[str, Any]:
        body = await request.json()
        parent = str(body.get("filter", "")).split("'")[1]
        return {"runs": [state.runs[run_id] for run_id in state.children.get(parent, [])]}

    return app


# --- Airflow ---------------------------------------------------------------------------------------


@dataclass
class AirflowState:
    dags: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    xcoms: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    triggered: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    patches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    polls: dict[str, int] = field(default_factory=dict)
    health: dict[str, Any] = field(default_factory=dict)


def airflow_dag(dag_id: str, paused: bool = False, schedule: str = "*/5 * * * *") -> dict[str, Any]:
    return {
        "dag_id": dag_id,
        "dag_display_name": dag_id,
        "is_paused": paused,
        "is_stale": False,
        "timetable_summary": schedule,
        "timetable_description": schedule,
        "next_dagrun_run_after": iso(NOW + timedelta(minutes=5)),
        "next_dagrun_logical_date": iso(NOW + timedelta(minutes=5)),
        "tags": [{"name": "ancora", "dag_id": dag_id}],
        "owners": ["ancora"],
    }


def airflow_run(
    dag_id: str, run_id: str, state: str, started: datetime, seconds: float | None
) -> dict[str, Any]:
    return {
        "dag_run_id": run_id,
        "dag_id": dag_id,
        "logical_date": None,
        "queued_at": iso(started),
        "start_date": iso(started),
        "end_date": iso(started + timedelta(seconds=seconds)) if seconds is not None else None,
        "run_after": iso(started),
        "state": state,
        "run_type": "scheduled",
        "conf": {},
        "note": None,
    }


def sample_airflow(state: AirflowState) -> None:
    """The Ancora DAGs with a few runs; collect runs carry `store` results for the collection chart."""
    for dag_id in ("covertype_collect", "covertype_dispatch", "covertype_train"):
        state.dags[dag_id] = airflow_dag(dag_id)
        state.runs[dag_id] = []
    state.params["covertype_train"] = {
        "families": {
            "value": ["logistic_regression", "random_forest", "hist_gradient_boosting"],
            "schema": {
                "type": "array",
                "items": {
                    "type": "string",
                    "enum": ["logistic_regression", "random_forest", "hist_gradient_boosting"],
                },
                "minItems": 1,
            },
            "description": "Model families to search.",
        },
        "search_budget": {
            "value": 3,
            "schema": {"type": "integer", "minimum": 1, "maximum": 50},
            "description": "Hyper-parameter configurations tried per family.",
        },
    }
    for index, (batch, inserted, quarantined) in enumerate(((1, 180, 2), (1, 12, 0), (2, 190, 5))):
        run_id = f"scheduled__collect-{index}"
        started = NOW - timedelta(minutes=15 - 5 * index)
        state.runs["covertype_collect"].insert(
            0, airflow_run("covertype_collect", run_id, "success", started, 9)
        )
        state.xcoms[("covertype_collect", run_id, "store")] = {
            "group": 1,
            "batch": batch,
            "received": inserted + quarantined,
            "inserted": inserted,
            "duplicates": 0,
            "quarantined": quarantined,
            "exhausted": False,
            "run_id": run_id,
        }
    state.runs["covertype_dispatch"].append(
        airflow_run("covertype_dispatch", "scheduled__dispatch-0", "success", NOW - timedelta(hours=1), 12)
    )
    state.health = {
        name: {"status": "healthy", f"latest_{name}_heartbeat": iso(NOW)}
        for name in ("scheduler", "dag_processor", "triggerer")
    } | {"metadatabase": {"status": "healthy"}}


def airflow_app(state: AirflowState) -> FastAPI:
    app = FastAPI()
    token = "fake-airflow-token"

    def authorised(request: Request) -> None:
        if request.headers.get("authorization") != f"Bearer {token}":
            raise HTTPException(401, detail="Not authenticated")

    @app.post("/auth/token", status_code=201)
    async def login(request: Request) -> dict[str, str]:
        body = await request.json()
        if body.get("password") != AIRFLOW_PASSWORD:
            raise HTTPException(401, detail="Invalid credentials")
        return {"access_token": token}

    @app.get("/api/v2/monitor/health")
    def health() -> dict[str, Any]:
        return state.health

    @app.get("/api/v2/dags")
    def dags(request: Request) -> dict[str, Any]:
        authorised(request)
        return {"dags": list(state.dags.values()), "total_entries": len(state.dags)}

    @app.get("/api/v2/dags/{dag_id}")
    def dag(dag_id: str, request: Request) -> dict[str, Any]:
        authorised(request)
        if dag_id not in state.dags:
            raise HTTPException(404, detail=f"The Dag with ID: `{dag_id}` was not found")
        return state.dags[dag_id]

    @app.get("/api/v2/dags/{dag_id}/details")
    def details(dag_id: str, request: Request) -> dict[str, Any]:
        authorised(request)
        return {**state.dags[dag_id], "params": state.params.get(dag_id, {})}

    @app.patch("/api/v2/dags/{dag_id}")
    async def patch(dag_id: str, request: Request) -> dict[str, Any]:
        authorised(request)
        body = await request.json()
        state.patches.append((dag_id, body))
        state.dags[dag_id]["is_paused"] = bool(body["is_paused"])
        return state.dags[dag_id]

    @app.get("/api/v2/dags/{dag_id}/dagRuns")
    def runs(dag_id: str, request: Request, limit: int = 25) -> dict[str, Any]:
        authorised(request)
        wanted = request.query_params.getlist("state")
        found = [run for run in state.runs.get(dag_id, []) if not wanted or run["state"] in wanted]
        return {"dag_runs": found[:limit], "total_entries": len(found)}

    @app.post("/api/v2/dags/{dag_id}/dagRuns")
    async def trigger(dag_id: str, request: Request) -> dict[str, Any]:
        authorised(request)
        body = await request.json()
        state.triggered.append((dag_id, body.get("conf") or {}))
        run = airflow_run(dag_id, f"manual__{len(state.triggered)}", "queued", NOW, None)
        run.update(run_type="manual", conf=body.get("conf") or {}, start_date=None, note=body.get("note"))
        state.runs.setdefault(dag_id, []).insert(0, run)
        return run

    @app.get("/api/v2/dags/{dag_id}/dagRuns/{run_id}")
    def get_run(dag_id: str, run_id: str, request: Request) -> dict[str, Any]:
        """A triggered run advances one state per poll: queued, running, success."""
        authorised(request)
        run = next(run for run in state.runs[dag_id] if run["dag_run_id"] == run_id)
        polls = state.polls[run_id] = state.polls.get(run_id, 0) + 1
        if run["run_type"] == "manual":
            if polls >= 2:
                run.update(state="running", start_date=iso(NOW))
            if polls >= 3:
                run.update(state="success", end_date=iso(NOW + timedelta(seconds=42)))
        return run

    @app.get("/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
    def xcom(dag_id: str, run_id: str, task_id: str, key: str, request: Request) -> dict[str, Any]:
        authorised(request)
        if (dag_id, run_id, task_id) not in state.xcoms:
            raise HTTPException(404, detail=f"XCom entry with key: `{key}` not found")
        value = state.xcoms[(dag_id, run_id, task_id)]
        return {
            "key": key,
            "dag_id": dag_id,
            "run_id": run_id,
            "task_id": task_id,
            "map_index": -1,
            "value": value,
        }

    return app


# --- data API and task service ---------------------------------------------------------------------


def liveness_app() -> FastAPI:
    app = FastAPI()

    @app.get("/")
    def root() -> dict[str, str]:
        return {"Proyecto": "fake"}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


@dataclass
class FakeStack:
    inference: InferenceState
    mlflow: MlflowState
    airflow: AirflowState
    urls: dict[str, str]
    ports: dict[str, int]

    def reset(self) -> None:
        """Back to empty states, so one running stack serves many tests."""
        for state in (self.inference, self.mlflow, self.airflow):
            for spec in fields(state):
                default = spec.default_factory() if spec.default_factory is not MISSING else spec.default
                setattr(state, spec.name, default)

    def env(self) -> dict[str, str]:
        """ANCORA_* settings pointing the app at the stand-ins."""
        return {
            "ANCORA_BIND_HOST": "127.0.0.1",
            "ANCORA_UI_INFERENCE_URL": self.urls["inference"],
            "ANCORA_MLFLOW_TRACKING_URI": self.urls["mlflow"],
            "ANCORA_AIRFLOW_PORT": str(self.ports["airflow"]),
            "ANCORA_AIRFLOW_PASSWORD": AIRFLOW_PASSWORD,
            "ANCORA_DATA_API_URL": self.urls["data-api"],
            "ANCORA_TASK_SERVICE_URL": self.urls["task-service"],
            "ANCORA_UI_REFRESH_SECONDS": "2",
        }


@contextmanager
def fake_stack() -> Iterator[FakeStack]:
    """Every service the app calls, scripted, each on its own loopback port."""
    inference, mlflow, airflow = InferenceState(), MlflowState(), AirflowState()
    served = {
        "inference": ServedApp(inference_app(inference)),
        "mlflow": ServedApp(mlflow_app(mlflow)),
        "airflow": ServedApp(airflow_app(airflow)),
        "data-api": ServedApp(liveness_app()),
        "task-service": ServedApp(liveness_app()),
    }
    started: list[ServedApp] = []
    try:
        for app in served.values():
            app.start()
            started.append(app)
        yield FakeStack(
            inference=inference,
            mlflow=mlflow,
            airflow=airflow,
            urls={name: app.url for name, app in served.items()},
            ports={name: app.port for name, app in served.items()},
        )
    finally:
        for app in started:
            app.stop()
