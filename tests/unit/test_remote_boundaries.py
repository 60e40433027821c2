"""What the remote-execution code depends on, and where the client library sends passwords."""

from __future__ import annotations

import logging
import pkgutil
import subprocess
import sys

import pytest

import ancora.remote
from ancora.client.connection import Server_connection, service_url


def test_the_remote_package_and_its_runners_import_nothing_from_airflow() -> None:
    """The task service follows and cancels Slurm jobs itself: it must not need Airflow for that."""
    modules = [
        name
        for _, name, _ in pkgutil.walk_packages(ancora.remote.__path__, "ancora.remote.")
        if ".migrations" not in name
    ]
    assert "ancora.remote.runners.hpc" in modules and "ancora.remote.service" in modules
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "import ancora_task_service.app\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] == 'airflow'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("node", "port", "scheme", "configured", "expected"),
    [
        ("tasks.example.org", None, None, "http://127.0.0.1:8002", "http://tasks.example.org:8002"),
        ("tasks.example.org", 8443, "https", "http://127.0.0.1:8002", "https://tasks.example.org:8443"),
        ("https://tasks.example.org", None, None, "http://127.0.0.1:8002", "https://tasks.example.org:8002"),
        ("https://tasks.example.org:9443", None, None, "http://x:1", "https://tasks.example.org:9443"),
        ("tasks.example.org", None, None, "https://gateway:443", "https://tasks.example.org:8002"),
        ("::1", 8002, None, "http://127.0.0.1:8002", "http://[::1]:8002"),
    ],
)
def test_the_client_builds_http_or_https_urls(
    node: str, port: int | None, scheme: str | None, configured: str, expected: str
) -> None:
    assert service_url(node, port, scheme, configured) == expected


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="http or https"):
        service_url("tasks.example.org", None, "ftp", "http://127.0.0.1:8002")


def test_the_client_warns_before_sending_a_password_in_clear_text_to_another_host(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = Server_connection("tasks.invalid", "alice", "password-1", port=8002)
    sent: list[str] = []
    monkeypatch.setattr(connection.session, "post", lambda url, **_: sent.append(url) or _refused())
    with caplog.at_level(logging.WARNING), pytest.raises(ValueError):
        connection.login()
    assert sent == ["http://tasks.invalid:8002/login"]
    assert "plain http" in caplog.text

    caplog.clear()
    loopback = Server_connection("127.0.0.1", "alice", "password-1", port=8002)
    monkeypatch.setattr(loopback.session, "post", lambda url, **_: _refused())
    with caplog.at_level(logging.WARNING), pytest.raises(ValueError):
        loopback.login()
    assert "plain http" not in caplog.text


def _refused() -> object:
    import requests

    response = requests.Response()
    response.status_code = 401
    response._content = b'{"detail": "wrong username or password"}'
    response.request = requests.Request("POST", "http://x/login").prepare()
    return response
