"""Pipelines: the DAGs and their last runs, a confirmed trigger with params, a run followed to its end."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import streamlit as st

from ancora.clients.airflow import AirflowError
from ancora.clients.health import AIRFLOW, HOW_TO_START
from ancora.ui import views
from ancora.ui.users import Page, may_administer
from ancora_ui.widgets import airflow_client, calling, flash, require_page, service_down, settings, show_flash

user = require_page(Page.PIPELINES)
current = settings()
public = current.ui_airflow_public_url
WATCHED = "pipelines_watched_runs"
PENDING = "pipelines_pending_trigger"

st.title("Pipelines")
show_flash()
st.link_button("Open the Airflow UI", public, icon=":material/open_in_new:")

with calling(AIRFLOW), airflow_client() as client:
    dags = sorted(client.list_dags(), key=lambda dag: str(dag["dag_id"]))
    last_runs: dict[str, dict[str, Any] | None] = {}
    for dag in dags:
        runs = client.list_dag_runs(str(dag["dag_id"]), limit=1)
        last_runs[str(dag["dag_id"])] = runs[0] if runs else None

if not dags:
    st.info("Airflow knows no DAG yet: the DAG processor parses the DAG folder within a minute of `make up`.")
    st.stop()

st.dataframe(
    views.dags_frame(dags, last_runs, public),
    hide_index=True,
    column_config={"Airflow": st.column_config.LinkColumn("Airflow", display_text="open")},
)
dag_ids = [str(dag["dag_id"]) for dag in dags]


def watch_runs() -> None:
    """The triggered runs' states, polled until every one has ended; then the page refreshes once."""
    watched: list[tuple[str, str]] = st.session_state.get(WATCHED, [])
    rows = []
    running = False
    try:
        with airflow_client() as client:
            for dag_id, run_id in watched:
                rows.append({"DAG": dag_id, **views.dag_run_row(client.get_dag_run(dag_id, run_id), public)})
    except AirflowError as problem:
        service_down(AIRFLOW, problem)
        return
    for row in rows:
        running = running or row["state"] not in views.FINISHED_RUN_STATES
    st.dataframe(
        rows,
        hide_index=True,
        column_config={"Airflow": st.column_config.LinkColumn("Airflow", display_text="open")},
    )
    for row in rows:
        if row["state"] == "success":
            st.success(f"{row['DAG']} run {row['run']} succeeded in {row['duration (s)']} s.")
        elif row["state"] == "failed":
            st.error(f"{row['DAG']} run {row['run']} failed; its task logs are in the Airflow UI.")
    if running:
        st.caption(f"Refreshing every {current.ui_refresh_seconds:g} s until the runs end.")
    elif st.session_state.get("pipelines_was_running"):
        st.session_state["pipelines_was_running"] = False
        st.rerun(scope="app")
    st.session_state["pipelines_was_running"] = running


def still_running() -> bool:
    return bool(st.session_state.get(WATCHED)) and bool(st.session_state.get("pipelines_was_running", True))


def confirm_trigger() -> None:
    """Runs before the page is drawn again, so the question is gone and the answer is at the top."""
    dag_id, conf = st.session_state[PENDING]
    st.session_state[PENDING] = None
    try:
        with airflow_client() as client:
            run = client.trigger_dag_run(
                dag_id, conf=conf, note=f"triggered from the Ancora app by {user.username}"
            )
    except AirflowError as problem:
        if problem.status_code == 0:
            flash("error", f"**Airflow is not reachable.** {problem}\n\nHow to fix: {HOW_TO_START[AIRFLOW]}.")
        else:
            flash("error", f"Airflow refused the run: {problem}")
        return
    st.session_state.setdefault(WATCHED, []).insert(0, (dag_id, str(run["dag_run_id"])))
    st.session_state["pipelines_was_running"] = True
    flash("success", f"Triggered {dag_id}: run {run['dag_run_id']} is {run.get('state', 'queued')}.")


def cancel_trigger() -> None:
    st.session_state[PENDING] = None
    flash("info", "Nothing was triggered.")


st.subheader("Trigger a run")
choices = [dag_id for dag_id in views.TRIGGERABLE_DAGS if dag_id in dag_ids]
if not choices:
    st.info(f"None of {', '.join(views.TRIGGERABLE_DAGS)} is known to Airflow yet.")
else:
    dag_id = st.selectbox("DAG", choices, key="trigger_dag")
    with calling(AIRFLOW), airflow_client() as client:
        details = client.get_dag_details(dag_id)
    fields = views.param_fields(details.get("params"))
    conf: dict[str, Any] = {}
    for field in fields:
        key = f"param_{dag_id}_{field.name}"
        if field.kind == "multiselect":
            conf[field.name] = st.multiselect(
                field.name, list(field.choices), default=field.default, key=key, help=field.description
            )
        elif field.kind == "select":
            conf[field.name] = st.selectbox(field.name, list(field.choices), key=key, help=field.description)
        elif field.kind == "integer":
            conf[field.name] = int(
                st.number_input(
                    field.name,
                    min_value=int(field.minimum) if field.minimum is not None else None,
                    max_value=int(field.maximum) if field.maximum is not None else None,
                    value=int(field.default) if field.default is not None else 0,
                    step=1,
                    key=key,
                    help=field.description,
                )
            )
        elif field.kind == "number":
            conf[field.name] = st.number_input(
                field.name, value=float(field.default or 0), key=key, help=field.description
            )
        elif field.kind == "boolean":
            conf[field.name] = st.checkbox(field.name, value=field.default, key=key, help=field.description)
        else:
            conf[field.name] = st.text_input(
                field.name, value="" if field.default is None else str(field.default), key=key
            )
    if not fields:
        st.caption(f"{dag_id} takes no parameters.")
    if st.button(f"Trigger {dag_id}", key="trigger_request"):
        st.session_state[PENDING] = (dag_id, conf)

    pending = st.session_state.get(PENDING)
    if pending is not None:
        pending_dag, pending_conf = pending
        shown = ", ".join(f"{k}={v}" for k, v in pending_conf.items()) or "no parameters"
        st.warning(f"Start a run of **{pending_dag}** now with {shown}?")
        confirm, cancel = st.columns(2)
        confirm.button("Confirm", type="primary", key="trigger_confirm", on_click=confirm_trigger)
        cancel.button("Cancel", key="trigger_cancel", on_click=cancel_trigger)

if st.session_state.get(WATCHED):
    st.subheader("Runs started here")
    interval = timedelta(seconds=current.ui_refresh_seconds) if still_running() else None
    st.fragment(watch_runs, run_every=interval)()

st.subheader("Recent runs")
shown_dag = st.selectbox("DAG", dag_ids, key="runs_dag")
with calling(AIRFLOW), airflow_client() as client:
    recent = client.list_dag_runs(shown_dag, limit=10)
if recent:
    st.dataframe(
        [views.dag_run_row(run, public) for run in recent],
        hide_index=True,
        column_config={"Airflow": st.column_config.LinkColumn("Airflow", display_text="open")},
    )
else:
    st.caption(f"{shown_dag} has not run yet.")

if may_administer(user.role):
    st.subheader("Pause or unpause (Admin)")
    target = st.selectbox("DAG", dag_ids, key="pause_dag")
    paused = bool(next(dag for dag in dags if dag["dag_id"] == target).get("is_paused"))
    st.write(f"{target} is **{'paused' if paused else 'active'}**.")
    if st.button("Unpause" if paused else "Pause", key="pause_toggle"):
        try:
            with airflow_client() as client:
                client.set_paused(target, not paused)
        except AirflowError as problem:
            service_down(AIRFLOW, problem)
        else:
            flash("success", f"{target} is now {'active' if paused else 'paused'}.")
            st.rerun()
