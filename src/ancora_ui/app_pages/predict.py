"""Predict: one row from a form (inputs built from the data schema), or a CSV file in one batch call."""

from __future__ import annotations

from typing import Any

import streamlit as st

from ancora.clients.health import INFERENCE
from ancora.clients.inference import InferenceError
from ancora.schema import CATEGORICAL, COVER_TYPE_NAMES, FEATURES
from ancora.ui import views
from ancora.ui.users import Page
from ancora_ui.widgets import inference_client, require_page, service_down, settings

require_page(Page.PREDICT)
st.title("Predict the forest cover type")

FIELD_KEY = "predict_field_"


@st.cache_data(show_spinner=False)
def samples() -> list[dict[str, str]]:
    return views.sample_rows()


def served_model() -> dict[str, Any] | None:
    try:
        with inference_client() as client:
            return client.models()
    except InferenceError as problem:
        service_down(INFERENCE, problem)
        return None


def show_served(model: dict[str, Any]) -> None:
    if model.get("status") == "serving":
        st.caption(
            f"Served model: **{model.get('name')} v{model.get('version')}** "
            f"(alias `{model.get('alias')}`, loaded {views.shown_time(model.get('loaded_at'))})"
        )
    else:
        reason = model.get("last_check_error") or "no version carries the alias yet"
        st.warning(
            f"No model is served yet ({reason}). Train one: trigger `covertype_train` on the Pipelines "
            "page (Admin) or run `uv run ancora train`; the API picks up the champion within seconds."
        )


def load_sample(row: dict[str, str]) -> None:
    for column in FEATURES:
        value = row[column.name]
        st.session_state[FIELD_KEY + column.name] = value if column.kind == CATEGORICAL else int(value)


def show_refusal(problem: InferenceError, what: str) -> None:
    """Service down, no model yet, or a refused input: each says what to do next."""
    if problem.unreachable:
        service_down(INFERENCE, problem)
    elif problem.status_code == 503:
        st.warning(f"No model can answer yet: {problem}")
    else:
        st.error(f"{what} was refused: {problem}")


def predict_one() -> None:
    rows = samples()
    st.subheader("One observation")
    with st.expander("Try a sample row from the shipped data", expanded=False):
        labels = [views.sample_label(row) for row in rows]
        choice = st.selectbox(
            "Sample", range(len(rows)), format_func=lambda i: labels[i], key="sample_choice"
        )
        if st.button("Fill the form with this row", key="fill_sample"):
            load_sample(rows[int(choice)])
            st.info("The form holds the sample row; press Predict.")
    default = rows[0] if rows else {}
    with st.form("predict-form"):
        columns = st.columns(3)
        values: dict[str, Any] = {}
        for index, column in enumerate(FEATURES):
            key = FIELD_KEY + column.name
            with columns[index % 3]:
                if column.kind == CATEGORICAL:
                    if key not in st.session_state:
                        st.session_state[key] = default.get(column.name, column.choices[0])
                    values[column.name] = st.selectbox(
                        column.name, column.choices, key=key, help=column.description
                    )
                else:
                    if key not in st.session_state:
                        st.session_state[key] = int(default.get(column.name, column.minimum or 0))
                    values[column.name] = st.number_input(
                        column.name,
                        min_value=column.minimum,
                        max_value=column.maximum,
                        step=1,
                        key=key,
                        help=f"{column.description} ({column.minimum}..{column.maximum})",
                    )
        submitted = st.form_submit_button("Predict", type="primary")
    if not submitted:
        return
    try:
        with inference_client() as client:
            answer = client.predict(views.row_for_request(values))
    except InferenceError as problem:
        show_refusal(problem, "The row")
        return
    label = int(answer["prediction"])
    st.success(
        f"Predicted cover type **{label}: {answer['class_name']}** "
        f"by model {answer['model_name']} v{answer['model_version']}."
    )
    left, right = st.columns([1, 2])
    left.metric("Cover type", f"{label} {COVER_TYPE_NAMES.get(label, '')}")
    left.metric("Model version", str(answer["model_version"]))
    chart = views.probabilities_frame(answer["probabilities"])
    right.bar_chart(chart, x="cover type", y="probability", horizontal=True, sort=False)


def predict_file() -> None:
    st.subheader("A CSV file")
    limit = settings().inference_batch_max_rows
    st.caption(
        f"A header naming the 12 features (any order; a Cover_Type column is ignored), at most {limit} rows. "
        "Scored in one call by one model version."
    )
    st.download_button(
        "Download an example CSV",
        views.sample_csv(),
        file_name="covertype-example.csv",
        mime="text/csv",
        key="example_csv",
    )
    upload = st.file_uploader("CSV file", type=["csv"], key="csv_upload")
    if upload is None:
        return
    content = upload.getvalue()
    try:
        uploaded = views.read_uploaded_csv(content)
    except ValueError as problem:
        st.error(f"{upload.name} is not a readable CSV file: {problem}")
        return
    st.write(f"{upload.name}: {len(uploaded)} rows, {len(uploaded.columns)} columns.")
    if len(uploaded) > limit:
        st.error(f"{upload.name} has {len(uploaded)} rows; one call takes at most {limit}. Split the file.")
        return
    if not st.button("Score the file", type="primary", key="score_csv"):
        return
    with st.status(f"Scoring {len(uploaded)} rows...", expanded=False) as status:
        try:
            with inference_client() as client:
                answer = client.predict_csv(content)
        except InferenceError as problem:
            status.update(label="Scoring failed", state="error")
            show_refusal(problem, "The file")
            return
        status.update(
            label=f"Scored {answer['count']} rows with model v{answer['model_version']}", state="complete"
        )
    result = views.batch_result_frame(uploaded, answer)
    st.success(f"{answer['count']} rows scored by {answer['model_name']} v{answer['model_version']}.")
    st.dataframe(result, hide_index=True)
    st.download_button(
        "Download the predictions (CSV)",
        views.to_csv(result),
        file_name=f"predictions-{upload.name}",
        mime="text/csv",
        key="predictions_csv",
    )


model = served_model()
if model is not None:
    show_served(model)
    one, many = st.tabs(["One row", "CSV file"])
    with one:
        predict_one()
    with many:
        predict_file()
