"""Where the task service is and who logs in, the way existing ``biganchoring_ml_module`` scripts
expect: ``Server_connection(node_name, username, password, port).login()``.

Nothing secret is passed on the command line or kept in scripts: the username and password default
to ``ANCORA_TASK_SERVICE_USERNAME`` / ``ANCORA_TASK_SERVICE_PASSWORD`` and the address to
``ANCORA_TASK_SERVICE_URL`` (read through Ancora's settings).

HTTPS: give ``ANCORA_TASK_SERVICE_URL=https://...``, or a ``node_name`` with its scheme
(``https://tasks.example.org``), or ``scheme="https"``. A bare ``node_name`` takes the scheme of
``ANCORA_TASK_SERVICE_URL`` (http when that is unset, as the module always did). The password and
every token cross the network with each login, so use https whenever the service is not on this
machine; the client warns when it sends them in clear text to another host. Certificates are
verified (requests' CA bundle, or ``REQUESTS_CA_BUNDLE`` for a private CA).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any
from urllib.parse import urlsplit

import requests

from ancora.config import get_settings

DEFAULT_NODE = "atn1b01n28"
DEFAULT_PORT = 8002
TIMEOUT_SECONDS = 30.0
UPLOAD_TIMEOUT_SECONDS = 300.0
SCHEMES = ("http", "https")

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def service_url(node_name: str, port: int | None, scheme: str | None, configured_url: str) -> str:
    """The base URL for a node name (optionally ``scheme://host[:port]``), a port and a scheme."""
    configured = urlsplit(configured_url)
    if "://" not in node_name and node_name.count(":") > 1 and not node_name.startswith("["):
        node_name = f"[{node_name}]"
    given = urlsplit(node_name if "://" in node_name else f"//{node_name}")
    chosen = (scheme or given.scheme or configured.scheme or "http").lower()
    if chosen not in SCHEMES:
        raise ValueError(f"scheme must be http or https, not {chosen!r}")
    if given.hostname is None:
        raise ValueError(f"node_name {node_name!r} names no host")
    host = f"[{given.hostname}]" if ":" in given.hostname else given.hostname
    return f"{chosen}://{host}:{port or given.port or DEFAULT_PORT}"


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
        scheme: str | None = None,
    ) -> None:
        settings = get_settings()
        self.node_name = node_name
        self.port = port
        configured = settings.task_service_url.rstrip("/")
        if node_name != DEFAULT_NODE or port is not None or scheme is not None:
            self.base_url = service_url(node_name, port, scheme, configured)
        else:
            self.base_url = configured
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
        address = urlsplit(self.base_url)
        if address.scheme == "http" and not is_loopback(address.hostname or ""):
            log.warning(
                "sending the password to %s over plain http: anyone on the network can read it; "
                "use https (see docs/remote.md)",
                address.hostname,
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
