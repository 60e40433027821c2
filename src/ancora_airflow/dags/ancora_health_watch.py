"""
### ancora_health_watch

Probes every service of the stack and the extra hosts of `ANCORA_MONITOR_EXTRA_HOSTS` (TCP, TLS
certificate expiry, DNS) on `ANCORA_HEALTH_WATCH_SCHEDULE` (every five minutes), records since when
each is unhealthy in the events database, and raises an alert (SMTP and webhook, once per outage)
for a service unhealthy for longer than `ANCORA_ALERT_UNHEALTHY_MINUTES`.

A run never fails because a service is down: that is what it reports. It fails only when it cannot
record (the events database is unreachable), which the DAG failure alert then reports.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

from ancora.airflow.notify import on_dag_failure
from ancora.config import get_settings


@dag(
    dag_id="ancora_health_watch",
    schedule=get_settings().health_watch_schedule,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=4),
    tags=["ancora", "monitoring", "health"],
    doc_md=__doc__,
    default_args={"owner": "ancora", "retries": 1, "retry_delay": timedelta(seconds=30)},
    on_failure_callback=on_dag_failure,
)
def ancora_health_watch() -> None:
    @task(execution_timeout=timedelta(minutes=3))
    def probe() -> dict[str, Any]:
        from ancora.airflow.notify import alert
        from ancora.monitoring.alerts import store_for
        from ancora.monitoring.health_watch import watch

        settings = get_settings()
        states, alerts = watch(settings, store_for(settings))
        raised = [item.dedupe_key for item in alerts if alert(item, settings)]
        return {
            "unhealthy": {s.service: s.detail for s in states if not s.healthy},
            "healthy": [s.service for s in states if s.healthy],
            "alerts_raised": raised,
        }

    probe()


ancora_health_watch()
