"""Alerts: what deserves a notification, raised once per cause and recorded in the events database.

Four causes: a failed DAG run, a drift report over its threshold, the promotion gate keeping the
champion N times in a row, and a service unhealthy for longer than a set time. Each alert has a
dedupe key (the run, the report, the streak's first version, the outage's start), so a retried task
or the next health probe never notifies twice. Delivery (SMTP, webhook) is Airflow's notifiers, in
``ancora.airflow.notify``; this module decides and records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ancora.config import Settings
from ancora.monitoring.store import DriftReport, MonitoringStore, open_monitoring_store

log = logging.getLogger(__name__)

DAG_FAILED = "dag_failed"
DRIFT = "drift"
GATE_STREAK = "gate_streak"
SERVICE_UNHEALTHY = "service_unhealthy"


@dataclass(frozen=True)
class Alert:
    kind: str
    dedupe_key: str
    summary: str
    detail: str = ""

    def text(self) -> str:
        return f"[Ancora] {self.summary}" + (f"\n{self.detail}" if self.detail else "")


Sender = Callable[[Alert], Iterable[str]]
"""Delivers an alert; returns the channels it reached (``smtp``, ``webhook``)."""


def raise_alert(store: MonitoringStore, alert: Alert, send: Sender, now: datetime | None = None) -> bool:
    """Record the alert and, the first time its key is seen, send it. True when it was new."""
    if not store.record_alert(
        now or datetime.now(UTC), alert.kind, alert.dedupe_key, alert.summary, alert.detail
    ):
        log.info("alert %s already raised; not sent again", alert.dedupe_key)
        return False
    channels = list(send(alert))
    store.set_notified(alert.dedupe_key, channels)
    log.warning(
        "alert raised (%s): %s; notified: %s", alert.kind, alert.summary, ", ".join(channels) or "nobody"
    )
    return True


def dag_failed_alert(dag_id: str, run_id: str, failed_tasks: Iterable[str], reason: str) -> Alert:
    tasks = ", ".join(sorted(failed_tasks)) or "none recorded"
    return Alert(
        DAG_FAILED,
        f"{DAG_FAILED}:{dag_id}:{run_id}",
        f"DAG {dag_id} run {run_id} failed",
        f"Failed tasks: {tasks}. {reason}".strip(),
    )


def drift_alert(report: DriftReport) -> Alert:
    drifted = ", ".join(report.drifted_features) or "none"
    return Alert(
        DRIFT,
        f"{DRIFT}:{report.kind}:{report.subject}:v{report.reference_version}",
        f"drift over threshold in {report.kind} {report.subject} "
        f"against champion v{report.reference_version}",
        f"{report.share_drifted:.0%} of the features drifted ({drifted}); class mix distance "
        f"{report.class_mix_score or 0:.3f}{' (drifted)' if report.class_mix_drifted else ''}. "
        f"{report.current_rows} rows against {report.reference_rows} training rows."
        + (f" Report: {report.artifact_uri}" if report.artifact_uri else ""),
    )


def gate_streak(decisions: list[tuple[str, str]], streak: int) -> list[str] | None:
    """Versions (oldest first) of the newest run of ``kept`` decisions when it is ``streak`` long or
    longer; ``decisions`` are (version, gate decision) pairs in any order."""
    ordered = sorted(decisions, key=lambda pair: int(pair[0]) if pair[0].isdigit() else 0, reverse=True)
    kept: list[str] = []
    for version, decision in ordered:
        if decision != "kept":
            break
        kept.append(version)
    return list(reversed(kept)) if len(kept) >= streak else None


def gate_streak_alert(settings: Settings) -> Alert | None:
    """Read the registry's gate decisions; an alert when the newest ``alert_gate_streak`` were all kept."""
    from mlflow import MlflowClient

    name = settings.registered_model_name
    client = MlflowClient(settings.mlflow_tracking_uri)
    versions = client.search_model_versions(f"name = '{name}'", max_results=200)
    decisions = [(str(v.version), v.tags.get("gate_decision", "")) for v in versions]
    streak = gate_streak(decisions, settings.alert_gate_streak)
    if streak is None:
        return None
    return Alert(
        GATE_STREAK,
        f"{GATE_STREAK}:{name}:from-v{streak[0]}",
        f"the promotion gate rejected {len(streak)} candidates of {name} in a row "
        f"(v{streak[0]}..v{streak[-1]})",
        "The champion keeps beating new candidates: the data may have changed in a way training does not "
        "capture, or the evaluation set no longer represents it. Compare the runs on the Models page.",
    )


def unhealthy_alert(service: str, since: datetime, detail: str | None, minutes: float) -> Alert:
    return Alert(
        SERVICE_UNHEALTHY,
        f"{SERVICE_UNHEALTHY}:{service}:{since:%Y%m%dT%H%M%SZ}",
        f"{service} unhealthy for more than {minutes:g} minutes (since {since:%Y-%m-%d %H:%M} UTC)",
        detail or "",
    )


def store_for(settings: Settings) -> MonitoringStore:
    return open_monitoring_store(settings.dispatch_events_db_url)
