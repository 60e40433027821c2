"""Dispatches: scheduled scoring runs by time window, each with its event timeline and predictions."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from ancora.clients.health import INFERENCE
from ancora.clients.inference import DISPATCH_STATES, InferenceError
from ancora.ui import views
from ancora.ui.users import Page
from ancora_ui.widgets import calling, inference_client, require_page, service_down

require_page(Page.DISPATCHES)
st.title("Dispatches")
st.caption(
    "Scheduled scoring of the datalake's waiting rows by the champion (DAG `covertype_dispatch`). "
    "Times in UTC."
)

START, END = "dispatch_start", "dispatch_end"


def naive_utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC).replace(tzinfo=None, second=0, microsecond=0) if moment else None


if START not in st.session_state:
    with calling(INFERENCE), inference_client() as client:
        window = client.list_dispatches()
    st.session_state[START] = naive_utc(views.parse_time(window.get("start")))
    st.session_state[END] = naive_utc(views.parse_time(window.get("end")))

left, middle, right, far = st.columns([2, 2, 1, 2])
start = left.datetime_input("From (UTC)", key=START, format="YYYY-MM-DD")
end = middle.datetime_input("To (UTC)", key=END, format="YYYY-MM-DD")
state = right.selectbox("State", ["all", *DISPATCH_STATES], key="dispatch_state")
text = far.text_input("Filter (id, run, model, error)", key="dispatch_filter")

if start is not None and end is not None and start >= end:
    st.error("The window's start must be before its end.")
    st.stop()

try:
    with inference_client() as client:
        answer = client.list_dispatches(
            start.replace(tzinfo=UTC) if start else None,
            end.replace(tzinfo=UTC) if end else None,
            None if state == "all" else state,
        )
except InferenceError as problem:
    if problem.status_code in (400, 422):
        st.error(f"The window was refused: {problem}")
    else:
        service_down(INFERENCE, problem)
    st.stop()

dispatches = answer.get("dispatches", [])
table = views.dispatches_frame(dispatches, text)
if table.empty:
    st.info("No dispatch in this window" + (" matches the filter." if text or state != "all" else "."))
    st.stop()

counts = table["state"].value_counts().to_dict()
st.write(
    f"**{len(table)} dispatches** from {views.shown_time(answer.get('start'))} to "
    f"{views.shown_time(answer.get('end'))}: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in DISPATCH_STATES)
)
st.dataframe(table, hide_index=True)
st.download_button(
    "Download this list (CSV)",
    views.to_csv(table),
    file_name="dispatches.csv",
    mime="text/csv",
    key="list_csv",
)

st.subheader("One dispatch")
ids = list(table["id"])
labels = {
    row["id"]: f"{row['started_at']} · {row['state']} · {row['id']}" for row in table.to_dict("records")
}
chosen = st.selectbox("Dispatch", ids, format_func=lambda i: labels[i], key="dispatch_id")
try:
    with inference_client() as client:
        detail = client.get_dispatch(str(chosen))
except InferenceError as problem:
    if problem.status_code == 404:
        st.warning(f"Dispatch {chosen} no longer exists: {problem}")
    else:
        service_down(INFERENCE, problem)
    st.stop()

if detail.get("state") == "failed":
    st.error(f"Failed: {detail.get('error') or 'no reason recorded'}")
elif detail.get("state") == "running":
    st.info("Still running; this page shows it as of now.")
else:
    st.success(f"Succeeded with model {detail.get('model_name')} v{detail.get('model_version')}.")
metrics = st.columns(4)
for column, (label, key) in zip(
    metrics,
    [
        ("Read", "rows_read"),
        ("Predicted", "rows_predicted"),
        ("Invalid", "rows_invalid"),
        ("Written", "rows_written"),
    ],
    strict=True,
):
    column.metric(label, int(detail.get(key) or 0))

st.markdown("**Events**")
st.dataframe(views.events_frame(detail.get("events", [])), hide_index=True)

predictions = views.predictions_frame(detail.get("predictions", []))
st.markdown(f"**Predictions** ({len(predictions)} rows)")
st.dataframe(predictions, hide_index=True)
st.download_button(
    "Download the predictions (CSV)",
    views.to_csv(predictions),
    file_name=f"dispatch-{chosen}-predictions.csv",
    mime="text/csv",
    key="dispatch_predictions_csv",
)
