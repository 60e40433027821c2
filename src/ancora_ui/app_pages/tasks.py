"""Tasks: the signed-in user's remote jobs (status, MLflow run, log tail, cancel); admins see everyone's.

The app asks the task service's own HTTP API (the client library's `Server_connection`) as the
account `ANCORA_UI_TASK_SERVICE_USERNAME` (an admin there, so it may list everyone's); each user is
shown the tasks whose owner has their name, an Admin of the app all of them.
"""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from ancora.ui import views
from ancora.ui.users import Page, may_administer
from ancora_client.connection import Server_connection, expect
from ancora_ui.widgets import require_page, settings

user = require_page(Page.TASKS)
current = settings()
st.title("Remote tasks")
username = current.ui_task_service_username or current.task_service_username
secret = current.ui_task_service_password or current.task_service_password
if not username or secret is None:
    st.info(
        "The app has no task service account yet: set ANCORA_UI_TASK_SERVICE_USERNAME and "
        "ANCORA_UI_TASK_SERVICE_PASSWORD (an admin of the task service: `uv run ancora task-service users "
        "add --admin <name>`)."
    )
    st.stop()
admin = may_administer(user.role)


def connection() -> Server_connection:
    return Server_connection(
        username=username,
        password=secret.get_secret_value(),  # type: ignore[union-attr]
        url=current.task_service_url,
    )


def tasks_list() -> None:
    try:
        tasks = expect(connection().request("GET", "/tasks"), 200).json()
    except (ValueError, OSError) as problem:
        st.error(f"The task service at {current.task_service_url} did not answer: {problem}")
        return
    mine = views.visible_tasks(tasks, user.username, admin)
    st.caption("Everyone's tasks (Admin)." if admin else f"Tasks submitted as `{user.username}`.")
    if not mine:
        st.info("No remote task yet. Submit one with the client library (`Submitter(...).submit_task()`).")
        return
    st.dataframe(
        views.tasks_frame(mine, current.ui_mlflow_public_url),
        hide_index=True,
        column_config={"MLflow": st.column_config.LinkColumn("MLflow", display_text="open run")},
    )
    ids = [str(task["id"]) for task in mine]
    chosen = st.selectbox("Task", ids, key="tasks_chosen")
    task = next(t for t in mine if str(t["id"]) == chosen)
    st.markdown(f"**{task['status']}** on `{task['runner_location']}`: `{task['execution_command']}`")
    logs = connection().request("GET", f"/tasks/{chosen}/logs")
    st.code(
        logs.json().get("log", "") if logs.status_code == 200 else f"no log: {logs.text[:200]}", language=None
    )
    if str(task["status"]).upper() not in views.FINISHED_TASK_STATES and st.button(
        "Cancel this task", type="primary", key=f"cancel-{chosen}"
    ):
        answer = connection().request("POST", f"/tasks/{chosen}/cancel")
        if answer.status_code == 200:
            st.success(f"Task {chosen}: {answer.json()['status']}")
        else:
            st.error(f"Cancel refused: {answer.status_code} {answer.text[:200]}")


st.fragment(tasks_list, run_every=timedelta(seconds=current.ui_refresh_seconds))()
