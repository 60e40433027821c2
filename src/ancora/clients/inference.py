"""A client of the inference API: predictions, the served model, health and the dispatch history.

The Streamlit app and scripts call the service through it, so the paths and the error handling are
written once. Every failure becomes an ``InferenceError`` whose message a person can read (the
service's own ``detail`` when it sent one); ``status_code`` 0 means the service was not reached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from ancora.clients.http import ServiceClient
from ancora.config import Settings

DISPATCH_STATES = ("running", "succeeded", "failed")


class InferenceError(RuntimeError):
    """The inference API failed a call; ``status_code`` is its HTTP status (0: not reachable)."""

    def __init__(self, message: str, status_code: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code

    @property
    def unreachable(self) -> bool:
        return self.status_code == 0


def error_detail(response: httpx.Response) -> str:
    """FastAPI's ``detail``: a string, or a list of validation errors turned into one line each."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):
        lines = []
        for issue in detail:
            if isinstance(issue, dict):
                where = ".".join(str(part) for part in issue.get("loc", ()) if part != "body")
                lines.append(f"{where}: {issue.get('msg', issue)}" if where else str(issue.get("msg", issue)))
            else:
                lines.append(str(issue))
        return "; ".join(lines)
    return str(detail)


class InferenceClient(ServiceClient):
    @classmethod
    def from_settings(cls, settings: Settings) -> InferenceClient:
        return cls(settings.ui_inference_url, timeout=settings.ui_http_timeout_seconds)

    def as_user(self, username: str) -> InferenceClient:
        """Name the app's signed-in user on every call (X-Ancora-User); the prediction log keeps it."""
        self._http.headers["X-Ancora-User"] = username
        return self

    def _call(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as problem:
            raise InferenceError(
                f"the inference API at {self.base_url} is not reachable: {problem}"
            ) from None
        if response.status_code not in ok:
            raise InferenceError(
                f"{method} {path}: {response.status_code} {error_detail(response)}", response.status_code
            )
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = self._call(method, path, **kwargs).json()
        if not isinstance(body, dict):
            raise InferenceError(f"{method} {path}: expected a JSON object, got {type(body).__name__}", 200)
        return body

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    def ready(self) -> dict[str, Any]:
        """200 once a model is loaded; a 503 raises with the service's reason (e.g. no champion yet)."""
        return self._json("GET", "/ready")

    def models(self) -> dict[str, Any]:
        return self._json("GET", "/models")

    def predict(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/predict", json=dict(row))

    def predict_batch(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self._json("POST", "/predict/batch", json=[dict(row) for row in rows])

    def predict_csv(self, csv_text: str | bytes) -> dict[str, Any]:
        """A CSV file scored in one call; the header names the 12 features (a label column is ignored)."""
        content = csv_text.encode("utf-8") if isinstance(csv_text, str) else csv_text
        return self._json("POST", "/predict/batch", content=content, headers={"content-type": "text/csv"})

    def list_dispatches(
        self, start: datetime | None = None, end: datetime | None = None, state: str | None = None
    ) -> dict[str, Any]:
        """Dispatches in a time window (the service's default window when start/end are omitted)."""
        params: dict[str, str] = {}
        if start is not None:
            params["start"] = start.isoformat()
        if end is not None:
            params["end"] = end.isoformat()
        if state:
            if state not in DISPATCH_STATES:
                raise ValueError(f"state must be one of {', '.join(DISPATCH_STATES)}, not {state!r}")
            params["state"] = state
        return self._json("GET", "/dispatches", params=params)

    def get_dispatch(self, dispatch_id: str) -> dict[str, Any]:
        """One dispatch with its events and per-row predictions; 404 raises with the service's detail."""
        return self._json("GET", f"/dispatches/{quote(dispatch_id, safe='')}")

    def datalake_status(self) -> dict[str, Any]:
        return self._json("GET", "/datalake/status")
