"""Delivery of alerts through Airflow's own notifiers: the SMTP provider's ``SmtpNotifier`` and the
HTTP provider's ``HttpNotifier`` posting a Slack-compatible ``{"text": ...}`` body to a webhook.

Airflow-specific (imported only by DAGs, their callbacks and ``ancora alerts test``), and light at
import: DAG files import it at top level, so everything heavy is imported when an alert is sent. The
notifiers take Airflow connections; they are derived here from Ancora's settings
(``ANCORA_ALERT_SMTP_CONNECTION``, ``ANCORA_ALERT_WEBHOOK_URL``) as ``AIRFLOW_CONN_*`` variables of the
running process, so one ``.env`` configures the native stack, compose and Celery workers alike, and a
test points them at its servers.
"""

from __future__ import annotations

import html
import json
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ancora.config import Settings, get_settings

if TYPE_CHECKING:
    from ancora.monitoring.alerts import Alert

log = logging.getLogger(__name__)

SMTP_CONN_ID = "ancora_alerts_smtp"
WEBHOOK_CONN_ID = "ancora_alerts_webhook"


def _conn_variable(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def configure_connections(settings: Settings) -> dict[str, str]:
    """The alert connections as ``AIRFLOW_CONN_*`` values, set in this process and returned."""
    values: dict[str, str] = {}
    if settings.alert_smtp_connection is not None:
        values[_conn_variable(SMTP_CONN_ID)] = settings.alert_smtp_connection.get_secret_value()
    if settings.alert_webhook_url is not None:
        url = settings.alert_webhook_url.get_secret_value()
        values[_conn_variable(WEBHOOK_CONN_ID)] = json.dumps({"conn_type": "http", "host": url})
    os.environ.update(values)
    return values


def send(
    alert: Alert, settings: Settings | None = None, context: Mapping[str, Any] | None = None
) -> list[str]:
    """Send through every configured channel; a channel that fails is logged and skipped."""
    from airflow.providers.http.notifications.http import HttpNotifier
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    settings = settings or get_settings()
    configure_connections(settings)
    notifiers: list[tuple[str, Any]] = []
    recipients = [address.strip() for address in settings.alert_email_to.split(",") if address.strip()]
    if settings.alert_smtp_connection is not None and recipients:
        body = "<pre>" + html.escape(alert.text()) + "</pre>"
        notifiers.append(
            (
                "smtp",
                SmtpNotifier(
                    to=recipients,
                    subject=f"[Ancora] {alert.summary}",
                    html_content=body,
                    smtp_conn_id=SMTP_CONN_ID,
                ),
            )
        )
    if settings.alert_webhook_url is not None:
        notifiers.append(
            (
                "webhook",
                HttpNotifier(
                    http_conn_id=WEBHOOK_CONN_ID,
                    json={"text": alert.text()},
                    headers={"Content-Type": "application/json"},
                ),
            )
        )
    delivered: list[str] = []
    for channel, notifier in notifiers:
        try:
            notifier.notify(dict(context or {}))
        except Exception as error:
            log.error("alert %s not delivered by %s: %s", alert.dedupe_key, channel, error)
            continue
        delivered.append(channel)
    return delivered


def alert(alert_to_raise: Alert, settings: Settings | None = None) -> bool:
    """Record and send (once per dedupe key)."""
    from ancora.monitoring.alerts import raise_alert, store_for

    settings = settings or get_settings()
    return raise_alert(store_for(settings), alert_to_raise, lambda a: send(a, settings))


def on_dag_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` of every Ancora DAG: one alert per failed run."""
    from ancora.monitoring.alerts import dag_failed_alert

    dag_run = context.get("dag_run")
    dag = context.get("dag")
    dag_id = str(getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", "unknown"))
    run_id = str(context.get("run_id") or getattr(dag_run, "run_id", "unknown"))
    failed: list[str] = []
    try:
        failed = (
            [ti.task_id for ti in dag_run.get_task_instances(state="failed")] if dag_run is not None else []
        )
    except Exception:  # the callback must never fail for want of detail
        failed = []
    reason = str(context.get("reason") or context.get("exception") or "")
    try:
        alert(dag_failed_alert(dag_id, run_id, failed, reason))
    except Exception:
        log.exception("the failure alert of %s %s could not be raised", dag_id, run_id)
