"""Health of every service of the stack, probed over HTTP only, with response times.

Databases are never opened here: each is reported by the service that owns it (Airflow's monitor
endpoint for its metadata database, an experiments search for MLflow's backend store, the inference
API's datalake status for the datalake). Probes run in parallel, so one service that hangs costs one
timeout, not one per service.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from ancora.config import Settings

PROBE_TIMEOUT_SECONDS = 3.0

AIRFLOW = "airflow"
MLFLOW = "mlflow"
INFERENCE = "inference"
DATA_API = "data-api"
TASK_SERVICE = "task-service"
DATALAKE = "datalake"

HOW_TO_START: dict[str, str] = {
    AIRFLOW: "start the stack with `make up` (natively it runs the Airflow api-server, scheduler, "
    "dag-processor and triggerer; `make status` shows which run) or `docker compose up -d`",
    MLFLOW: "start it with `make up` (or `docker compose up -d`); `make logs` shows why it stopped",
    INFERENCE: "start it with `make up`, or alone with `uv run ancora serve` (or `docker compose up -d`)",
    DATA_API: "start the simulator with `make up`, or alone with `uv run ancora data-api`; if "
    "ANCORA_DATA_API_URL points at the course API, that server is not answering",
    TASK_SERVICE: "start it with `make up`, or alone with `uv run ancora task-service`",
    DATALAKE: "the inference API reaches the datalake with ANCORA_DATALAKE_URL and ANCORA_DATALAKE_TABLE: "
    "check that the database answers and holds that table",
}

SERVICE_NAMES: dict[str, str] = {
    AIRFLOW: "Airflow",
    MLFLOW: "MLflow",
    INFERENCE: "the inference API",
    DATA_API: "the data API",
    TASK_SERVICE: "the task service",
    DATALAKE: "the datalake",
}

AIRFLOW_COMPONENTS = {
    "metadatabase": "Airflow metadata database",
    "scheduler": "Airflow scheduler",
    "dag_processor": "Airflow DAG processor",
    "triggerer": "Airflow triggerer",
}


@dataclass(frozen=True)
class Probe:
    component: str
    service: str
    """Which service answers for it (a key of HOW_TO_START)."""
    ok: bool
    detail: str
    latency_ms: float | None
    url: str

    @property
    def how_to_start(self) -> str:
        return "" if self.ok else HOW_TO_START.get(self.service, "")


@dataclass(frozen=True)
class Answer:
    response: httpx.Response | None
    latency_ms: float | None
    error: str


def _get(http: httpx.Client, url: str) -> Answer:
    started = time.perf_counter()
    try:
        response = http.get(url)
    except httpx.TimeoutException:
        return Answer(None, None, f"no answer within {http.timeout.read or PROBE_TIMEOUT_SECONDS:g} s")
    except httpx.TransportError as problem:
        return Answer(None, None, f"not reachable ({type(problem).__name__}: {problem})")
    return Answer(response, (time.perf_counter() - started) * 1000, "")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _simple(component: str, service: str, url: str) -> Callable[[httpx.Client], list[Probe]]:
    def probe(http: httpx.Client) -> list[Probe]:
        answer = _get(http, url)
        if answer.response is None:
            return [Probe(component, service, False, answer.error, None, url)]
        ok = answer.response.status_code == 200
        detail = "healthy" if ok else f"HTTP {answer.response.status_code}"
        return [Probe(component, service, ok, detail, answer.latency_ms, url)]

    return probe


def _airflow(settings: Settings) -> Callable[[httpx.Client], list[Probe]]:
    url = f"{settings.airflow_api_url}/api/v2/monitor/health"

    def probe(http: httpx.Client) -> list[Probe]:
        answer = _get(http, url)
        if answer.response is None or answer.response.status_code != 200:
            detail = answer.error or f"HTTP {answer.response.status_code if answer.response else '?'}"
            return [Probe("Airflow API server", AIRFLOW, False, detail, answer.latency_ms, url)]
        body = _json(answer.response)
        probes = [Probe("Airflow API server", AIRFLOW, True, "healthy", answer.latency_ms, url)]
        for key, component in AIRFLOW_COMPONENTS.items():
            status = (body.get(key) or {}).get("status")
            heartbeat = (body.get(key) or {}).get(f"latest_{key}_heartbeat") or ""
            detail = str(status or "not reported") + (f" (last heartbeat {heartbeat})" if heartbeat else "")
            probes.append(Probe(component, AIRFLOW, status == "healthy", detail, answer.latency_ms, url))
        return probes

    return probe


def _mlflow(settings: Settings) -> Callable[[httpx.Client], list[Probe]]:
    base = settings.mlflow_tracking_uri.rstrip("/")

    def probe(http: httpx.Client) -> list[Probe]:
        probes = _simple("MLflow tracking server", MLFLOW, f"{base}/health")(http)
        if not probes[0].ok:
            return probes
        search = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
        answer = _get(http, search)
        ok = answer.response is not None and answer.response.status_code == 200
        if answer.response is None:
            detail = answer.error
        else:
            detail = "answers queries" if ok else f"HTTP {answer.response.status_code}"
        probes.append(Probe("MLflow backend store", MLFLOW, ok, detail, answer.latency_ms, search))
        return probes

    return probe


def _inference(settings: Settings) -> Callable[[httpx.Client], list[Probe]]:
    base = settings.ui_inference_url

    def probe(http: httpx.Client) -> list[Probe]:
        probes = _simple("Inference API", INFERENCE, f"{base}/health")(http)
        if not probes[0].ok:
            return probes
        ready = _get(http, f"{base}/ready")
        if ready.response is None:
            probes.append(Probe("Served model", INFERENCE, False, ready.error, None, f"{base}/ready"))
        else:
            body = _json(ready.response)
            ok = ready.response.status_code == 200
            detail = f"version {body.get('model_version')}" if ok else str(body.get("detail", "not ready"))
            probes.append(Probe("Served model", INFERENCE, ok, detail, ready.latency_ms, f"{base}/ready"))
        lake = _get(http, f"{base}/datalake/status")
        if lake.response is not None and lake.response.status_code == 200:
            body = _json(lake.response)
            ok = bool(body.get("ok"))
            table = body.get("table") or "?"
            detail = f"table {table}" + (f": {body.get('error')}" if body.get("error") else "")
            latency = body.get("latency_ms")
            probes.append(
                Probe(
                    "Datalake",
                    DATALAKE,
                    ok,
                    detail,
                    float(latency) if latency is not None else lake.latency_ms,
                    f"{base}/datalake/status",
                )
            )
        return probes

    return probe


def probe_all(settings: Settings, timeout: float = PROBE_TIMEOUT_SECONDS) -> list[Probe]:
    """Every component's health, in a fixed order, whatever is down."""
    probes: list[Callable[[httpx.Client], list[Probe]]] = [
        _airflow(settings),
        _mlflow(settings),
        _inference(settings),
        _simple("Data API", DATA_API, f"{settings.data_api_url.rstrip('/')}/"),
        _simple("Task service", TASK_SERVICE, f"{settings.task_service_url.rstrip('/')}/health"),
    ]
    with (
        httpx.Client(timeout=timeout) as http,
        ThreadPoolExecutor(max_workers=len(probes)) as pool,
    ):
        results = list(pool.map(lambda probe: probe(http), probes))
    return [probe for group in results for probe in group]


def datalake_status(settings: Settings, timeout: float = PROBE_TIMEOUT_SECONDS) -> dict[str, Any] | None:
    """The inference API's datalake status, or None when it does not answer one."""
    with httpx.Client(timeout=timeout) as http:
        answer = _get(http, f"{settings.ui_inference_url}/datalake/status")
    if answer.response is None or answer.response.status_code != 200:
        return None
    return _json(answer.response)
