"""The client's whole configuration: three environment variables, read when a connection is made.

``ANCORA_TASK_SERVICE_URL`` (where the task service answers; default ``http://127.0.0.1:8002``, the
native stack's), ``ANCORA_TASK_SERVICE_USERNAME`` and ``ANCORA_TASK_SERVICE_PASSWORD`` (the account
scripts log in as when they pass none). The client reads nothing else, neither the server's settings
nor a ``.env`` file, so no server variable (a bad ``ANCORA_GROUP_NUMBER``, say) can break a script on a
login node.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

URL_VARIABLE = "ANCORA_TASK_SERVICE_URL"
USERNAME_VARIABLE = "ANCORA_TASK_SERVICE_USERNAME"
PASSWORD_VARIABLE = "ANCORA_TASK_SERVICE_PASSWORD"  # noqa: S105 (the name, not a password)
DEFAULT_URL = "http://127.0.0.1:8002"
SCHEMES = ("http", "https")


@dataclass(frozen=True)
class ClientEnvironment:
    """What the three variables say; an empty variable counts as unset."""

    url: str = DEFAULT_URL
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def is_service_url(url: str) -> bool:
    """An http or https URL with a host and, when it gives one, a numeric port."""
    address = urlsplit(url)
    try:
        address.port  # noqa: B018 (urlsplit checks the port only when it is read)
    except ValueError:
        return False
    return address.scheme.lower() in SCHEMES and bool(address.hostname)


def read_environment(environ: Mapping[str, str] | None = None) -> ClientEnvironment:
    """The client's variables from ``environ`` (default: the process environment).

    ValueError names the variable when the URL is not an http(s) URL with a host: a typo fails at
    ``Submitter()``, not as a connection error later.
    """
    values = os.environ if environ is None else environ
    url = values.get(URL_VARIABLE, "").strip().rstrip("/") or DEFAULT_URL
    if not is_service_url(url):
        raise ValueError(f"{URL_VARIABLE} must be an http or https URL with a host, not {url!r}")
    return ClientEnvironment(
        url=url,
        username=values.get(USERNAME_VARIABLE) or None,
        password=values.get(PASSWORD_VARIABLE) or None,
    )
