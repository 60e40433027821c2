"""Monitor: every service's health and response time, DAG schedules, dispatches, datalake, collection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from ancora.clients.airflow import AirflowError
from ancora.clients.health import AIRFLOW, DATALAKE, HOW_TO_START, INFERENCE, probe_all
from ancora.clients.inference import InferenceError
from ancora.clients.mlflow import MlflowError
from ancora.ui import views
from ancora.ui.users import Page
from ancora_ui.widgets import (
    airflow_client,
    inference_client,
    mlflow_client,
    require_page,
    service_down,
    settings,
)

# Latest successful collect runs whose `store` result feeds the collection chart.
COLLECT_RUNS_READ = 50

require_page(Page.MONITOR)
current = settings()
public = current.ui_airflow_public_url
st.title("Monitor")


@st.cache_data(show_spinner=False, max_entries=2000)
def store_result(dag_id: str, run_id: str) -> dict[str, Any] | None:
    """A finished run's `store` XCom never changes, so each is fetched once per app process."""
    try:
        with airflow_client() as client:
            value = client.get_xcom(dag_id, run_id, "store")
    except AirflowError as problem:
        if problem.status_code == 404:
            return None
        raise
    return value if isinstance(value, dict) else None


def show_health() -> None:
    st.subheader("Services")
    probes = probe_all(current)
    table = pd.DataFrame(
        [
            {
                "healthy": p.ok,
                "component": p.component,
                "status": p.detail,
                "response (ms)": round(p.latency_ms, 1) if p.latency_ms is not None else None,
                "checked URL": p.url,
            }
            for p in probes
        ]
    )
    st.dataframe(
        table, hide_index=True, column_config={"healthy": st.column_config.CheckboxColumn(width="small")}
    )
    # The datalake has its own section below, with the same reason.
    down = [p for p in probes if not p.ok and p.service != DATALAKE]
    if not down:
        st.success(f"All {len(probes)} components are healthy.")
    for probe in down:
        hint = f" How to fix: {probe.how_to_start}." if probe.how_to_start else ""
        st.error(f"**{probe.component}**: {probe.detail}.{hint}")


def show_schedules() -> dict[str, dict[str, Any]]:
    st.subheader("DAG schedules")
    with airflow_client() as client:
        dags = sorted(client.list_dags(), key=lambda dag: str(dag["dag_id"]))
        last_runs = {}
        for dag in dags:
            runs = client.list_dag_runs(str(dag["dag_id"]), limit=1)
            last_runs[str(dag["dag_id"])] = runs[0] if runs else None
    st.dataframe(
        views.dags_frame(dags, last_runs, public),
        hide_index=True,
        column_config={"Airflow": st.column_config.LinkColumn("Airflow", display_text="open")},
    )
    return {str(dag["dag_id"]): {"dag": dag, "last": last_runs[str(dag["dag_id"])]} for dag in dags}


def show_dispatch_times(schedules: dict[str, dict[str, Any]]) -> None:
    entry = schedules.get(views.DISPATCH_DAG)
    if entry is None:
        st.info(f"Airflow does not know the `{views.DISPATCH_DAG}` DAG yet.")
    else:
        last = entry["last"]
        left, middle, right = st.columns(3)
        left.metric("Last dispatch", views.short_time(last.get("start_date")) if last else "never")
        middle.metric("Its state", str(last.get("state")) if last else "-")
        next_run = views.next_run_time(entry["dag"])
        paused = bool(entry["dag"].get("is_paused"))
        right.metric("Next dispatch", "paused" if paused else (views.short_time(next_run) or "not scheduled"))


def show_datalake() -> None:
    try:
        with inference_client() as client:
            lake = client.datalake_status()
    except InferenceError as problem:
        if problem.status_code == 404:
            st.info("This inference API reports no datalake status (GET /datalake/status answered 404).")
        else:
            service_down(INFERENCE, problem)
        return
    latency = lake.get("latency_ms")
    text = (
        f"Datalake table `{lake.get('table')}`: "
        + (f"connected, trivial query in {latency:.1f} ms" if lake.get("ok") and latency is not None else "")
        + (
            f", {lake['pending_rows']} rows awaiting a prediction"
            if lake.get("pending_rows") is not None
            else ""
        )
    )
    if lake.get("ok"):
        st.success(text)
    else:
        st.error(
            f"Datalake table `{lake.get('table')}` is not usable: {lake.get('error') or 'no reason given'}. "
            f"How to fix: {HOW_TO_START[DATALAKE]}."
        )


def show_collection(schedules: dict[str, dict[str, Any]]) -> None:
    st.subheader("Collection")
    if views.COLLECT_DAG not in schedules:
        st.info(f"Airflow does not know the `{views.COLLECT_DAG}` DAG yet.")
        return
    with airflow_client() as client:
        runs = client.list_dag_runs(views.COLLECT_DAG, limit=COLLECT_RUNS_READ, state=["success"])
    results = [r for r in (store_result(views.COLLECT_DAG, str(run["dag_run_id"])) for run in runs) if r]
    frame = views.collection_frame(results)
    if frame.empty:
        st.info(f"No successful `{views.COLLECT_DAG}` run stored rows yet.")
        return
    st.caption(
        f"Rows stored and quarantined per batch over the latest {len(results)} successful collect runs."
    )
    chart = frame.set_index("batch")[["collected", "quarantined"]]
    st.bar_chart(chart, x_label="batch", y_label="rows", stack=False)
    st.dataframe(frame, hide_index=True)


def show_first_champion() -> None:
    """A young stack: say what it waits for, and how many rows are still needed, instead of red."""
    from ancora.monitoring.first_run import young_state

    try:
        with mlflow_client() as client:
            champion = client.aliases(current.registered_model_name).get(current.serving_alias)
    except MlflowError:
        return  # the Services table already says MLflow is down
    if champion is not None:
        return
    try:
        state = young_state(current, None)
    except Exception as problem:  # the raw-data store is not readable from here
        st.info(f"Waiting for the first champion (rows stored: unknown, {problem}).")
        return
    st.info(state.message().capitalize() + ".", icon=":material/hourglass_top:")


def show_monitoring_store() -> None:
    """The events database: its status, drift over time, the class mix, alerts, extra hosts."""
    from ancora.monitoring.health_watch import run_extra_checks
    from ancora.monitoring.store import open_monitoring_store

    st.subheader("Events database")
    try:
        store = open_monitoring_store(current.dispatch_events_db_url)
        status = store.status()
    except Exception as problem:
        st.error(f"The events database cannot be opened: {problem}")
        return
    if status.ok:
        st.success(f"Events database ({status.backend}) answers in {status.latency_ms:.1f} ms.")
    else:
        st.error(f"Events database ({status.backend}): {status.detail}")
        return
    since = datetime.now(UTC) - timedelta(days=current.monitor_history_days)
    st.subheader("Drift against the champion's training data")
    history = store.drift_history(since)
    if history.empty:
        st.info(
            "No drift report yet: covertype_drift_batch writes one per collected batch once a "
            "champion exists."
        )
    for kind, label in (("batch", "collected batches"), ("served", "served windows")):
        pivot = views.drift_pivot(history, kind)
        if not pivot.empty:
            st.markdown(
                f"**Per-feature drift score of {label}** (threshold: numeric "
                f"{current.drift_numeric_threshold:g}, categorical {current.drift_categorical_threshold:g})"
            )
            st.line_chart(pivot, x_label="report time (UTC)", y_label="drift score")
    reports = store.drift_reports(since)
    if not reports.empty:
        latest = reports.iloc[-1]
        st.markdown(
            f"**Class mix of the latest report** ({latest['kind']} {latest['subject']}, champion "
            f"v{latest['reference_version']}, {'breached' if latest['breached'] else 'within thresholds'})"
        )
        mix = views.class_mix_frame(str(latest["class_mix"]))
        st.bar_chart(
            mix, x="class", y=["training labels", "served / predicted"], stack=False, horizontal=True
        )
    st.subheader("Alerts")
    alerts = store.alerts(since, limit=50)
    if alerts:
        st.dataframe(
            pd.DataFrame(
                [{"at": a.at, "kind": a.kind, "summary": a.summary, "notified": a.notified} for a in alerts]
            ),
            hide_index=True,
        )
    else:
        st.caption("No alert raised in this period.")
    checks = run_extra_checks(current)
    if checks:
        st.subheader("Extra hosts")
        st.dataframe(
            pd.DataFrame(
                [
                    {"ok": c.ok, "name": c.name, "kind": c.kind, "target": c.target, "status": c.detail}
                    for c in checks
                ]
            ),
            hide_index=True,
            column_config={"ok": st.column_config.CheckboxColumn(width="small")},
        )


def monitor() -> None:
    show_first_champion()
    show_health()
    schedules: dict[str, dict[str, Any]] | None = None
    try:
        schedules = show_schedules()
    except AirflowError as problem:
        service_down(AIRFLOW, problem)
    st.subheader("Dispatches")
    if schedules is not None:
        show_dispatch_times(schedules)
    show_datalake()
    if schedules is not None:
        try:
            show_collection(schedules)
        except AirflowError as problem:
            service_down(AIRFLOW, problem)
    show_monitoring_store()
    st.caption(
        f"Refreshes every {current.ui_refresh_seconds:g} s; last refresh {datetime.now(UTC):%H:%M:%S} UTC."
    )


st.fragment(monitor, run_every=timedelta(seconds=current.ui_refresh_seconds))()
