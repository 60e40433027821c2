"""Alerts through Airflow's own notifiers to a real local SMTP server (aiosmtpd) and a real local
webhook receiver, once per cause; a failed DAG run, a gate streak and a long outage raise them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from ancora.airflow.notify import send
from ancora.config import Settings, get_settings
from ancora.monitoring.alerts import Alert, gate_streak, raise_alert
from ancora.monitoring.health_watch import watch
from ancora.monitoring.store import open_monitoring_store
from tests.support.simulator import free_port


class Mailbox:
    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[Mailbox]:
    mailbox = Mailbox(free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


class Webhook(ThreadingHTTPServer):
    posts: list[dict[str, Any]]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.server.posts.append(json.loads(body))  # type: ignore[attr-defined]
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = Webhook(("127.0.0.1", free_port()), Receiver)
    server.posts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def alert_settings(
    smtp: Mailbox, webhook: Webhook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setenv(
        "ANCORA_ALERT_SMTP_CONNECTION",
        f"smtp://127.0.0.1:{smtp.port}?from_email=ancora%40example.org&disable_tls=true&disable_ssl=true",
    )
    monkeypatch.setenv("ANCORA_ALERT_EMAIL_TO", "ops@example.org, oncall@example.org")
    monkeypatch.setenv(
        "ANCORA_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{webhook.server_address[1]}/hooks/T000/B000"
    )
    monkeypatch.setenv("ANCORA_DISPATCH_EVENTS_DB_URL", f"sqlite:///{tmp_path / 'events.db'}")
    get_settings.cache_clear()
    return get_settings()


def test_an_alert_reaches_the_smtp_server_and_the_webhook_once(
    alert_settings: Settings, smtp: Mailbox, webhook: Webhook
) -> None:
    store = open_monitoring_store(alert_settings.dispatch_events_db_url)
    alert = Alert("drift", "drift:batch 7:v3", "drift over threshold in batch 7", "5 of 12 features drifted")
    assert raise_alert(store, alert, lambda a: send(a, alert_settings))
    assert not raise_alert(store, alert, lambda a: send(a, alert_settings)), "the same cause notifies once"
    (mail,) = smtp.messages
    assert mail["Subject"] == "[Ancora] drift over threshold in batch 7"
    assert mail["From"] == "ancora@example.org"
    assert "ops@example.org" in mail["To"] and "oncall@example.org" in mail["To"]
    assert "5 of 12 features drifted" in str(mail.get_payload(0).get_payload(decode=True))
    assert webhook.posts == [{"text": "[Ancora] drift over threshold in batch 7\n5 of 12 features drifted"}]
    (record,) = store.alerts(datetime.now(UTC) - timedelta(minutes=1))
    assert (record.kind, record.notified) == ("drift", "smtp,webhook")


def test_a_channel_that_is_down_does_not_stop_the_other(
    alert_settings: Settings, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "ANCORA_ALERT_SMTP_CONNECTION",
        f"smtp://127.0.0.1:{free_port()}?disable_tls=true&disable_ssl=true&from_email=a%40b.c",
    )
    get_settings.cache_clear()
    delivered = send(Alert("test", "t", "down"), get_settings())
    assert delivered == ["webhook"] and len(webhook.posts) == 1


def test_a_failed_dag_run_raises_one_alert(
    alert_settings: Settings,
    smtp: Mailbox,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
    airflow_db: None,
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from ancora.locations import dags_folder

    monkeypatch.setenv("ANCORA_DATA_API_URL", f"http://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    dag = DagBag(dag_folder=str(dags_folder())).dags["covertype_collect"]
    dag.get_task("fetch").retries = 0
    run = dag.test()
    assert run.state == "failed"
    assert [post["text"].splitlines()[0] for post in webhook.posts] == [
        f"[Ancora] DAG covertype_collect run {run.run_id} failed"
    ]
    assert len(smtp.messages) == 1


def test_three_kept_decisions_in_a_row_make_a_streak() -> None:
    assert gate_streak([("1", "first"), ("2", "kept"), ("3", "kept")], 3) is None
    assert gate_streak([("1", "first"), ("2", "kept"), ("3", "kept"), ("4", "kept")], 3) == ["2", "3", "4"]
    assert gate_streak([("4", "kept"), ("2", "kept"), ("3", "promoted"), ("5", "kept")], 3) is None


def test_a_service_down_longer_than_the_limit_raises_an_alert_once_per_outage(
    alert_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv(
        "ANCORA_MONITOR_EXTRA_HOSTS",
        json.dumps([{"name": "course API", "kind": "tcp", "host": "127.0.0.1", "port": port}]),
    )
    monkeypatch.setenv("ANCORA_ALERT_UNHEALTHY_MINUTES", "10")
    get_settings.cache_clear()
    settings = get_settings()
    store = open_monitoring_store(settings.dispatch_events_db_url)
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    _, first = watch(settings, store, start)
    assert not [a for a in first if "course API" in a.summary], "down, but not for long yet"
    _, later = watch(settings, store, start + timedelta(minutes=11))
    (course,) = [a for a in later if "course API" in a.summary]
    assert course.dedupe_key == "service_unhealthy:course API:20261201T120000Z"
    assert "Connection refused" in course.detail or "ConnectionRefusedError" in course.detail
    _, again = watch(settings, store, start + timedelta(minutes=16))
    assert [a.dedupe_key for a in again if "course API" in a.summary] == [course.dedupe_key], (
        "same outage, same key"
    )


def test_the_registry_s_gate_decisions_make_one_streak_alert(
    sqlite_mlflow_server: str, covertype_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import pandas as pd

    from ancora.monitoring.alerts import gate_streak_alert
    from tests.support.inference import log_covertype_model, register

    name = "covertype-streak"
    monkeypatch.setenv("ANCORA_MLFLOW_TRACKING_URI", sqlite_mlflow_server)
    monkeypatch.setenv("ANCORA_REGISTERED_MODEL_NAME", name)
    get_settings.cache_clear()
    logged = log_covertype_model(sqlite_mlflow_server, pd.read_csv(covertype_csv, nrows=500), 2, 0)
    client = mlflow.MlflowClient(sqlite_mlflow_server)
    for number, decision in enumerate(("first", "kept", "kept"), start=1):
        register(sqlite_mlflow_server, name, logged)
        client.set_model_version_tag(name, str(number), "gate_decision", decision)
    assert gate_streak_alert(get_settings()) is None, "two rejections are no streak"
    register(sqlite_mlflow_server, name, logged)
    client.set_model_version_tag(name, "4", "gate_decision", "kept")
    alert = gate_streak_alert(get_settings())
    assert alert is not None and alert.dedupe_key == f"gate_streak:{name}:from-v2"
    assert "rejected 3 candidates" in alert.summary and "(v2..v4)" in alert.summary


def test_an_inference_api_waiting_for_its_first_champion_is_no_outage(
    sqlite_mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.inference import running_inference

    name = "covertype-never-promoted"
    with running_inference(tmp_path / "inference", sqlite_mlflow_server, model_name=name) as url:
        monkeypatch.setenv("ANCORA_UI_INFERENCE_URL", url)
        monkeypatch.setenv("ANCORA_MLFLOW_TRACKING_URI", sqlite_mlflow_server)
        monkeypatch.setenv("ANCORA_REGISTERED_MODEL_NAME", name)
        monkeypatch.setenv("ANCORA_DISPATCH_EVENTS_DB_URL", f"sqlite:///{tmp_path / 'events.db'}")
        get_settings.cache_clear()
        settings = get_settings()
        store = open_monitoring_store(settings.dispatch_events_db_url)
        start = datetime.now(UTC)
        watch(settings, store, start)
        states, alerts = watch(settings, store, start + timedelta(minutes=30))
    inference = next(state for state in states if state.service == "the inference API")
    assert inference.healthy, inference.detail
    assert not [a for a in alerts if "inference" in a.summary]
