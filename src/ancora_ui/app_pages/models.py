"""Models: registered versions and aliases, the gate's decisions, the candidates of a training run."""

from __future__ import annotations

import streamlit as st

from ancora.clients.health import MLFLOW
from ancora.clients.inference import InferenceError
from ancora.clients.mlflow import MlflowError
from ancora.training.rollback import RollbackRefused, roll_back
from ancora.ui import views
from ancora.ui.users import Page, may_administer
from ancora_ui.widgets import calling, inference_client, mlflow_client, require_page, settings

user = require_page(Page.MODELS)
current = settings()
public = current.ui_mlflow_public_url
name = current.registered_model_name
st.title(f"Registered model `{name}`")
st.link_button("Open the MLflow UI", public, icon=":material/open_in_new:")

with calling(MLFLOW), mlflow_client() as client:
    versions = client.model_versions(name)

if not versions:
    st.info(
        f"No version of `{name}` is registered yet. Train one with the `covertype_train` DAG "
        "(Pipelines page) or `uv run ancora train`."
    )
    st.stop()

aliases = {alias: v.version for v in versions for alias in v.aliases}
columns = st.columns(max(len(aliases), 1))
for column, (alias, aliased_version) in zip(columns, sorted(aliases.items()), strict=False):
    column.metric(f"@{alias}", f"v{aliased_version}")

try:
    with inference_client() as inference:
        served = views.served_engine(inference.models())
except InferenceError as problem:
    served = None
    st.caption(f"The inference API did not say which engine serves: {problem}")
if served:
    st.markdown(f"Inference API: {served}.")

if may_administer(user.role) and current.serving_alias in aliases:
    with st.expander(f"Roll `@{current.serving_alias}` back (Admin)", icon=":material/undo:"):
        with st.form("rollback"):
            earlier = [v.version for v in versions if v.version != aliases[current.serving_alias]]
            target = st.selectbox("Serve version", ["previous champion", *earlier])
            reason = st.text_input("Why (recorded on both versions)")
            confirmed = st.checkbox(
                f"Yes, move @{current.serving_alias} away from v{aliases[current.serving_alias]}"
            )
            submitted = st.form_submit_button("Roll back", type="primary")
        if submitted:
            if not confirmed:
                st.error("Tick the confirmation first.")
            else:
                try:
                    with mlflow_client() as client:
                        done = roll_back(
                            client,
                            name,
                            current.serving_alias,
                            user.username,
                            reason,
                            None if target == "previous champion" else target,
                        )
                except (RollbackRefused, MlflowError) as problem:
                    st.error(f"Rollback refused: {problem}")
                else:
                    st.success(
                        f"@{done.alias} now points at v{done.to_version} (was v{done.from_version}); the "
                        f"inference API follows within {current.model_poll_interval_seconds:g} s."
                    )

st.subheader("Versions")
table = views.versions_frame(versions, public)
st.dataframe(
    table,
    hide_index=True,
    column_config={
        "MLflow": st.column_config.LinkColumn("MLflow", display_text="open"),
        "macro F1 (eval set)": st.column_config.NumberColumn(format="%.4f"),
        "champion macro F1 then": st.column_config.NumberColumn(format="%.4f"),
        "label parity": st.column_config.NumberColumn(format="%.4f"),
        "max prob. diff": st.column_config.NumberColumn(format="%.1e"),
        "compile s": st.column_config.NumberColumn(format="%.1f"),
    },
)

st.subheader("A training run: gate decision and candidates")
labels = {
    v.version: f"v{v.version}" + (f" (@{', @'.join(v.aliases)})" if v.aliases else "") for v in versions
}
default_version = aliases.get(current.serving_alias, versions[0].version)
chosen = st.selectbox(
    "Version",
    list(labels),
    index=list(labels).index(default_version),
    format_func=lambda v: labels[v],
    key="models_version",
)
version = next(v for v in versions if v.version == chosen)
if version.description:
    st.caption(version.description)
if version.training_run_id is None:
    st.info(f"v{version.version} was not registered by `ancora train`: it names no training run.")
    st.stop()

with calling(MLFLOW), mlflow_client() as client:
    training_run = client.get_run(version.training_run_id)
    candidates = client.child_runs(training_run)

gate = views.gate_view(training_run)
message = f"Gate: **{gate.decision or 'unknown'}**. {gate.reason}"
if gate.decision in ("first", "promoted"):
    st.success(message)
else:
    st.info(message)
st.link_button(
    f"Training run {training_run.run_name or training_run.run_id} in MLflow",
    client.run_url(public, training_run),
    icon=":material/open_in_new:",
)

families = views.family_evaluation_frame(training_run)
if not families.empty:
    st.markdown("**Best candidate of each family on the frozen evaluation set**")
    left, right = st.columns([1, 1])
    left.dataframe(families, hide_index=True)
    right.bar_chart(families, x="family", y="macro_f1", horizontal=True)

frame = views.candidates_frame(candidates, public)
if frame.empty:
    st.info("This training run has no candidate runs nested under it.")
else:
    st.markdown(f"**{len(frame)} candidates on the validation rows**")
    st.dataframe(
        frame,
        hide_index=True,
        column_config={"MLflow run": st.column_config.LinkColumn("MLflow run", display_text="open")},
    )
    st.bar_chart(frame, x="candidate", y="validation_macro_f1", color="family", horizontal=True)
