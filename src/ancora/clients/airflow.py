"""A small client of Airflow's REST API v2 (Airflow 3): token login, DAGs, DAG runs.

The task service triggers ``remote_task`` runs with it and the Streamlit UI lists and triggers DAGs
with it, so it stays general: no Ancora DAG is named here. Airflow 3 authenticates the public API
with a JWT from ``POST /auth/token``; the token is fetched on first use and again after a 401.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from ancora.airflow_env import ADMIN_USER, passwords_file
from ancora.clients.http import ServiceClient
from ancora.config import Settings


class AirflowError(RuntimeError):
    """Airflow answered with an error; ``status_code`` is its HTTP status (0: not reachable)."""

    def __init__(self, message: str, status_code: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code


def native_admin_password(settings: Settings) -> str | None:
    """The password the native stack's simple auth manager generated for its admin, if it did."""
    path: Path = passwords_file(settings)
    if not path.exists():
        return None
    passwords = json.loads(path.read_text())
    value = passwords.get(ADMIN_USER)
    return str(value) if value is not None else None


class AirflowClient(ServiceClient):
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 10.0) -> None:
        super().__init__(base_url, timeout)
        self._username = username
        self._password = password
        self._token: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, timeout: float = 10.0) -> AirflowClient:
        password = (
            settings.airflow_password.get_secret_value()
            if settings.airflow_password is not None
            else native_admin_password(settings)
        )
        if password is None:
            raise AirflowError("no Airflow password: set ANCORA_AIRFLOW_PASSWORD")
        return cls(settings.airflow_api_url, settings.airflow_username, password, timeout=timeout)

    def login(self) -> str:
        try:
            response = self._http.post(
                "/auth/token", json={"username": self._username, "password": self._password}
            )
        except httpx.TransportError as problem:
            raise AirflowError(f"Airflow at {self.base_url} is not reachable: {problem}") from problem
        if response.status_code not in (200, 201):
            raise AirflowError(f"Airflow login refused ({response.status_code})", response.status_code)
        self._token = str(response.json()["access_token"])
        return self._token

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in range(2):
            token = self._token or self.login()
            try:
                response = self._http.request(
                    method, f"/api/v2{path}", headers={"Authorization": f"Bearer {token}"}, **kwargs
                )
            except httpx.TransportError as problem:
                raise AirflowError(f"Airflow at {self.base_url} is not reachable: {problem}") from problem
            if response.status_code == 401 and attempt == 0:
                self._token = None
                continue
            if response.status_code >= 400:
                raise AirflowError(
                    f"{method} {path}: Airflow answered {response.status_code}: {response.text[:500]}",
                    response.status_code,
                )
            return response.json() if response.content else None
        raise AirflowError("Airflow kept refusing the token", 401)

    def list_dags(self, limit: int = 100, tags: list[str] | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if tags:
            params["tags"] = tags
        return list(self._request("GET", "/dags", params=params)["dags"])

    def get_dag(self, dag_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/dags/{dag_id}"))

    def get_dag_details(self, dag_id: str) -> dict[str, Any]:
        """The DAG with its params (each as Airflow dumps a Param: value, schema, description)."""
        return dict(self._request("GET", f"/dags/{dag_id}/details"))

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        return dict(self._request("PATCH", f"/dags/{dag_id}", json={"is_paused": paused}))

    def pause(self, dag_id: str) -> dict[str, Any]:
        return self.set_paused(dag_id, True)

    def unpause(self, dag_id: str) -> dict[str, Any]:
        return self.set_paused(dag_id, False)

    def trigger_dag_run(
        self,
        dag_id: str,
        conf: dict[str, Any] | None = None,
        run_id: str | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Start a run now; ``logical_date`` is null so several runs of one DAG may share a second."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id is not None:
            body["dag_run_id"] = run_id
        if note is not None:
            body["note"] = note
        return dict(self._request("POST", f"/dags/{dag_id}/dagRuns", json=body))

    def list_dag_runs(
        self, dag_id: str, limit: int = 25, state: list[str] | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, "order_by": "-start_date"}
        if state:
            params["state"] = state
        return list(self._request("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"])

    def get_dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def list_task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self._request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"])

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """A task's XCom value (Airflow 3 returns it as stored: JSON text or already decoded)."""
        entry = self._request(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        )
        value = entry.get("value") if isinstance(entry, dict) else None
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value
