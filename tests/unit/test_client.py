"""The client library (``ancora-client``): its three environment variables, its URLs, its dependencies,
and where it sends passwords."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import requests

from ancora.config import get_settings
from ancora_client import Server_connection, Submitter, TaskHandler
from ancora_client.connection import service_url
from ancora_client.environment import (
    DEFAULT_URL,
    PASSWORD_VARIABLE,
    URL_VARIABLE,
    USERNAME_VARIABLE,
    ClientEnvironment,
    read_environment,
)


def test_the_environment_gives_url_username_and_password() -> None:
    environment = read_environment(
        {
            URL_VARIABLE: "https://tasks.example.org:9443/",
            USERNAME_VARIABLE: "ada",
            PASSWORD_VARIABLE: "secret-1",
            "ANCORA_TASK_SERVICE_PORT": "9000",
            "ANCORA_BIND_HOST": "10.0.0.1",
        }
    )
    assert environment == ClientEnvironment("https://tasks.example.org:9443", "ada", "secret-1")
    assert "secret-1" not in repr(environment)


@pytest.mark.parametrize("environ", [{}, {URL_VARIABLE: "", USERNAME_VARIABLE: "", PASSWORD_VARIABLE: ""}])
def test_unset_or_empty_variables_give_the_native_service_and_no_account(environ: dict[str, str]) -> None:
    assert read_environment(environ) == ClientEnvironment(DEFAULT_URL, None, None)


@pytest.mark.parametrize(
    "url", ["tasks.example.org:8002", "ftp://tasks.example.org", "http://", "http://host:port"]
)
def test_a_bad_url_fails_naming_its_variable(url: str) -> None:
    with pytest.raises(ValueError, match=URL_VARIABLE):
        read_environment({URL_VARIABLE: url})


def test_a_bad_server_setting_does_not_break_the_submitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client reads its own three variables, never the server's Settings."""
    monkeypatch.setenv("ANCORA_GROUP_NUMBER", "eleven")
    monkeypatch.setenv(URL_VARIABLE, "http://tasks.example.org:8002")
    monkeypatch.setenv(USERNAME_VARIABLE, "ada")
    with pytest.raises(ValueError, match=r"(?i)group_number"):
        get_settings()
    submitter = Submitter(dataset_file="data.zip", processor_file="processor.zip")
    assert submitter.connection.base_url == "http://tasks.example.org:8002"
    assert submitter.connection.username == "ada"
    assert TaskHandler("42").connection.base_url == "http://tasks.example.org:8002"


def test_a_bad_url_variable_fails_at_the_submitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(URL_VARIABLE, "tasks.example.org")
    with pytest.raises(ValueError, match=URL_VARIABLE):
        Submitter()


def test_an_explicit_url_replaces_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(URL_VARIABLE, "http://elsewhere.example.org:8002")
    connection = Server_connection(username="ui", password="pw", url="https://gateway.example.org/tasks/")
    assert connection.base_url == "https://gateway.example.org/tasks"


def test_importing_the_client_loads_nothing_that_requests_does_not() -> None:
    """No Ancora, no pydantic: the client imports requests (with what it loads), the standard library
    and itself."""

    def loaded_by(statement: str) -> set[str]:
        probe = f"import sys\n{statement}\nprint(' '.join({{m.split('.')[0] for m in sys.modules}}))"
        result = subprocess.run(
            [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True
        )
        return set(result.stdout.split())

    extra = loaded_by("import ancora_client, biganchoring_ml_module") - loaded_by("import requests")
    assert extra - set(sys.stdlib_module_names) == {"ancora_client", "biganchoring_ml_module"}


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


def _refused() -> requests.Response:
    response = requests.Response()
    response.status_code = 401
    response._content = b'{"detail": "wrong username or password"}'
    response.request = requests.Request("POST", "http://x/login").prepare()
    return response
