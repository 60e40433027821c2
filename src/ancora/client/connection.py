"""Where the task service is and who logs in, the way existing ``biganchoring_ml_module`` scripts
expect: ``Server_connection(node_name, username, password, port).login()``.

Nothing secret is passed on the command line or kept in scripts: the username and password default
to ``ANCORA_TASK_SERVICE_USERNAME`` / ``ANCORA_TASK_SERVICE_PASSWORD`` and the address to
``ANCORA_TASK_SERVICE_URL`` (read through Ancora's settings).
"""

from __future__ import annotations

from typing import Any

import requests

from ancora.config import get_settings

DEFAULT_NODE = "atn1b01n28"
DEFAULT_PORT = 8002
TIMEOUT_SECONDS = 30.0
UPLOAD_TIMEOUT_SECONDS = 300.0


def expect(response: requests.Response, *statuses: int) -> requests.Response:
    """The response, or ValueError with the service's reason when its status is not expected."""
    if response.status_code not in statuses:
        try:
            reason = response.json().get("detail", response.text)
        except ValueError:
            reason = response.text
        raise ValueError(
            f"{response.request.method} {response.url} answered {response.status_code}: {reason}"
        )
    return response


class Server_connection:  # noqa: N801 (the name existing scripts import)
    """A login to the task service; keeps the token for the calls that follow."""

    def __init__(
        self,
        node_name: str = DEFAULT_NODE,
        username: str | None = None,
        password: str | None = None,
        port: int | None = None,
    ) -> None:
        settings = get_settings()
        self.node_name = node_name
        self.port = port
        if node_name != DEFAULT_NODE or port is not None:
            self.base_url = f"http://{node_name}:{port or DEFAULT_PORT}"
        else:
            self.base_url = settings.resolved_task_service_url.rstrip("/")
        self.username = username or settings.task_service_username
        secret = settings.task_service_password
        self._password = password or (secret.get_secret_value() if secret is not None else None)
        self._token: str | None = None
        self.session = requests.Session()

    def __repr__(self) -> str:
        return f"Server_connection(base_url={self.base_url!r}, username={self.username!r})"

    def login(self) -> requests.Response:
        """POST /login; the token is kept for later calls. ValueError on a refused login."""
        if not self.username or not self._password:
            raise ValueError(
                "no credentials: pass username and password or set ANCORA_TASK_SERVICE_USERNAME and "
                "ANCORA_TASK_SERVICE_PASSWORD"
            )
        response = self.session.post(
            f"{self.base_url}/login",
            json={"username": self.username, "password": self._password},
            timeout=TIMEOUT_SECONDS,
        )
        expect(response, 200)
        self._token = str(response.json()["access_token"])
        return response

    @property
    def token(self) -> str:
        if self._token is None:
            self.login()
        assert self._token is not None
        return self._token

    def request(
        self, method: str, path: str, timeout: float = TIMEOUT_SECONDS, **kwargs: Any
    ) -> requests.Response:
        """An authenticated call; logs in again once if the token expired."""
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {self.token}"}
            response = self.session.request(
                method, f"{self.base_url}{path}", headers=headers, timeout=timeout, **kwargs
            )
            if response.status_code != 401 or attempt == 1:
                return response
            self._token = None
            for stream in (kwargs.get("files") or {}).values():
                stream[1].seek(0)
        return response
