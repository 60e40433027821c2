"""Health over time: probe every service (and the configured extra hosts), remember since when each
is unhealthy, and name those down for longer than ``ANCORA_ALERT_UNHEALTHY_MINUTES``.

The ``ancora_health_watch`` DAG runs this every few minutes (``ANCORA_HEALTH_WATCH_SCHEDULE``): the
scheduler is the one component that already runs on a clock and can notify, and the probe history
lands in the events database the Monitor page reads. A watch run never fails because a service is
down; that is what it reports.
"""

from __future__ import annotations

import functools
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ancora.clients.health import DATALAKE, INFERENCE, SERVICE_NAMES, probe_all
from ancora.config import ExtraHost, Settings
from ancora.monitoring.alerts import Alert, unhealthy_alert
from ancora.monitoring.store import HealthState, MonitoringStore

CHECK_TIMEOUT_SECONDS = 5.0
SERVED_MODEL = "Served model"
"""The inference probe's readiness component; not ready while no champion exists is no outage."""


@dataclass(frozen=True)
class HostCheck:
    name: str
    kind: str
    target: str
    ok: bool
    detail: str
    latency_ms: float | None


def _timed(check: Callable[[], str]) -> tuple[bool, str, float | None]:
    started = time.perf_counter()
    try:
        detail = check()
    except (OSError, ValueError) as error:
        return False, f"{type(error).__name__}: {error}", None
    return True, detail, (time.perf_counter() - started) * 1000


def check_tcp(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=CHECK_TIMEOUT_SECONDS):
        return "accepts connections"


def check_dns(host: str) -> str:
    addresses = sorted({info[4][0] for info in socket.getaddrinfo(host, None)})
    return "resolves to " + ", ".join(str(address) for address in addresses[:4])


def tls_expiry(host: str, port: int, context: ssl.SSLContext | None = None) -> datetime:
    context = context or ssl.create_default_context()
    with (
        socket.create_connection((host, port), timeout=CHECK_TIMEOUT_SECONDS) as raw,
        context.wrap_socket(raw, server_hostname=host) as wrapped,
    ):
        certificate = wrapped.getpeercert()
    if not certificate or "notAfter" not in certificate:
        raise ValueError("the server sent no certificate")
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(str(certificate["notAfter"])), tz=UTC)


def check_tls(host: str, port: int, warn_days: float, context: ssl.SSLContext | None = None) -> str:
    expires = tls_expiry(host, port, context)
    days = (expires - datetime.now(UTC)).total_seconds() / 86400
    if days < warn_days:
        raise ValueError(
            f"certificate expires {expires:%Y-%m-%d} ({days:.1f} days, warning under {warn_days:g})"
        )
    return f"certificate valid until {expires:%Y-%m-%d} ({days:.0f} days)"


def run_extra_checks(settings: Settings, tls_context: ssl.SSLContext | None = None) -> list[HostCheck]:
    results = []
    for check in settings.monitor_extra_hosts:
        ok, detail, latency = _timed(functools.partial(_run_one, check, tls_context))
        results.append(HostCheck(check.name, check.kind, check.target, ok, detail, latency))
    return results


def _run_one(check: ExtraHost, tls_context: ssl.SSLContext | None) -> str:
    if check.kind == "dns" or check.port is None:  # the settings give tcp and tls checks a port
        return check_dns(check.host)
    if check.kind == "tls":
        return check_tls(check.host, check.port, check.warn_days, tls_context)
    return check_tcp(check.host, check.port)


def _no_champion_yet(settings: Settings) -> bool:
    from ancora.monitoring.first_run import champion_missing_reason

    try:
        return champion_missing_reason(settings) is not None
    except Exception:  # the registry cannot say: the served model's failure stands
        return False


def watch(
    settings: Settings, store: MonitoringStore, now: datetime | None = None
) -> tuple[list[HealthState], list[Alert]]:
    """One round: every service's state recorded, and an alert for each one down too long."""
    now = now or datetime.now(UTC)
    by_service: dict[str, list[tuple[bool, str]]] = {}
    young: bool | None = None
    for probe in probe_all(settings):
        if probe.service == DATALAKE:  # reported by dispatches; an unseeded demo datalake is no outage
            continue
        if probe.service == INFERENCE and probe.component == SERVED_MODEL and not probe.ok:
            young = _no_champion_yet(settings) if young is None else young
            if young:  # not ready because nothing is promoted yet: a state, not an outage
                continue
        by_service.setdefault(SERVICE_NAMES.get(probe.service, probe.service), []).append(
            (probe.ok, f"{probe.component}: {probe.detail}")
        )
    for host in run_extra_checks(settings):
        by_service.setdefault(host.name, []).append((host.ok, f"{host.target}: {host.detail}"))
    states, raised = [], []
    for service, results in sorted(by_service.items()):
        healthy = all(ok for ok, _ in results)
        detail = "; ".join(text for ok, text in results if not ok) or None
        state = store.observe_health(service, healthy, detail, now)
        states.append(state)
        if state.down_for_seconds(now) >= settings.alert_unhealthy_minutes * 60:
            raised.append(unhealthy_alert(service, state.since, detail, settings.alert_unhealthy_minutes))
    return states, raised
