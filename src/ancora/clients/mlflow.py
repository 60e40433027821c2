"""A client of the MLflow tracking server's REST API (2.0 paths, as MLflow 3 serves them).

The Streamlit app reads the registry and the training runs through it: registered versions with
their aliases and the tags training writes (family, macro F1, gate decision), the parent training
run's gate tags and per-family evaluation metrics, and the candidate runs nested under it; its only
writes are an alias and version tags (a rollback). It is
plain HTTP (httpx), not ``MlflowClient``, so the app imports no MLflow and a test can answer it
with any HTTP server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from ancora.clients.http import ServiceClient
from ancora.config import Settings

API = "/api/2.0/mlflow"


class MlflowError(RuntimeError):
    """MLflow failed a call; ``status_code`` is its HTTP status (0: not reachable)."""

    def __init__(self, message: str, status_code: int = 0, error_code: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code

    @property
    def unreachable(self) -> bool:
        return self.status_code == 0


def _pairs(items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {str(item["key"]): str(item.get("value", "")) for item in items or []}


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    run_id: str
    status: str
    created_ms: int
    description: str
    tags: dict[str, str]
    aliases: tuple[str, ...] = ()

    @property
    def training_run_id(self) -> str | None:
        """The parent training run (training tags the version with it); the version's own run is the
        best candidate's nested run."""
        return self.tags.get("run_id") or None


@dataclass(frozen=True)
class Run:
    run_id: str
    experiment_id: str
    run_name: str
    status: str
    start_ms: int | None
    end_ms: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Run:
        info = body.get("info", {})
        data = body.get("data", {})
        return cls(
            run_id=str(info.get("run_id") or info.get("run_uuid")),
            experiment_id=str(info.get("experiment_id", "")),
            run_name=str(info.get("run_name", "")),
            status=str(info.get("status", "")),
            start_ms=int(info["start_time"]) if info.get("start_time") else None,
            end_ms=int(info["end_time"]) if info.get("end_time") else None,
            metrics={str(m["key"]): float(m["value"]) for m in data.get("metrics", []) or []},
            params=_pairs(data.get("params")),
            tags=_pairs(data.get("tags")),
        )


class MlflowRestClient(ServiceClient):
    def __init__(self, tracking_uri: str, timeout: float = 10.0) -> None:
        super().__init__(tracking_uri, timeout)

    @classmethod
    def from_settings(cls, settings: Settings) -> MlflowRestClient:
        return cls(settings.mlflow_tracking_uri, timeout=settings.ui_http_timeout_seconds)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, f"{API}{path}", **kwargs)
        except httpx.TransportError as problem:
            raise MlflowError(f"MLflow at {self.base_url} is not reachable: {problem}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {}
            raise MlflowError(
                f"{method} {path}: MLflow answered {response.status_code}: "
                f"{body.get('message') or response.text[:300]}",
                response.status_code,
                str(body.get("error_code", "")),
            )
        answer = response.json() if response.content else {}
        return answer if isinstance(answer, dict) else {}

    def health(self) -> bool:
        try:
            return self._http.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def aliases(self, name: str) -> dict[str, str]:
        """alias -> version of a registered model; empty when the model is not registered yet."""
        try:
            body = self._call("GET", "/registered-models/get", params={"name": name})
        except MlflowError as problem:
            if problem.error_code == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise
        model = body.get("registered_model", {})
        return {str(a["alias"]): str(a["version"]) for a in model.get("aliases", []) or []}

    def model_versions(self, name: str, max_results: int = 100) -> list[ModelVersion]:
        """Every version of ``name``, newest first, each with the aliases pointing at it."""
        aliases = self.aliases(name)
        by_version: dict[str, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(version, []).append(alias)
        escaped = name.replace("'", "\\'")
        body = self._call(
            "GET",
            "/model-versions/search",
            params={"filter": f"name='{escaped}'", "max_results": max_results},
        )
        versions = [
            ModelVersion(
                name=str(item["name"]),
                version=str(item["version"]),
                run_id=str(item.get("run_id", "")),
                status=str(item.get("status", "")),
                created_ms=int(item.get("creation_timestamp", 0)),
                description=str(item.get("description", "")),
                tags=_pairs(item.get("tags")),
                aliases=tuple(sorted(by_version.get(str(item["version"]), []))),
            )
            for item in body.get("model_versions", []) or []
        ]
        return sorted(versions, key=lambda v: int(v.version) if v.version.isdigit() else 0, reverse=True)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._call(
            "POST", "/registered-models/alias", json={"name": name, "alias": alias, "version": version}
        )

    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self._call(
            "POST",
            "/model-versions/set-tag",
            json={"name": name, "version": version, "key": key, "value": value},
        )

    def get_run(self, run_id: str) -> Run:
        return Run.from_json(self._call("GET", "/runs/get", params={"run_id": run_id}).get("run", {}))

    def child_runs(self, parent: Run, max_results: int = 200) -> list[Run]:
        """The candidate runs nested under a training run."""
        body = self._call(
            "POST",
            "/runs/search",
            json={
                "experiment_ids": [parent.experiment_id],
                "filter": f"tags.mlflow.parentRunId = '{parent.run_id}'",
                "max_results": max_results,
            },
        )
        return [Run.from_json(item) for item in body.get("runs", []) or []]

    @staticmethod
    def run_url(public_url: str, run: Run) -> str:
        return f"{public_url.rstrip('/')}/#/experiments/{run.experiment_id}/runs/{run.run_id}"

    @staticmethod
    def version_url(public_url: str, version: ModelVersion) -> str:
        return f"{public_url.rstrip('/')}/#/models/{quote(version.name, safe='')}/versions/{version.version}"
