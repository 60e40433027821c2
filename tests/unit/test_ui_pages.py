"""The Streamlit app page by page with Streamlit's AppTest; the services are faked at the HTTP boundary.

Every service the app calls is a scripted FastAPI app on a loopback port (tests/support/fake_services.py),
reached through the app's real client modules over real HTTP. Sign-in uses a real users file with
Argon2 hashes in the test's state folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from ancora.config import get_settings
from ancora.locations import ui_script
from ancora.schema import CATEGORICAL, FEATURE_NAMES, FEATURES
from ancora.ui.users import Role, UserStore
from ancora.ui.views import sample_csv, sample_rows
from ancora_ui.widgets import USER_KEY, SignedIn
from tests.support.fake_services import (
    FakeStack,
    fake_stack,
    sample_airflow,
    sample_dispatches,
    sample_registry,
)
from tests.support.simulator import free_port

APP = ui_script()
PASSWORD = "correct horse battery"
PAGES = {
    "Predict": "app_pages/predict.py",
    "Models": "app_pages/models.py",
    "Pipelines": "app_pages/pipelines.py",
    "Monitor": "app_pages/monitor.py",
    "Dispatches": "app_pages/dispatches.py",
}
TIMEOUT = 60


@pytest.fixture(scope="module")
def running_fakes() -> Iterator[FakeStack]:
    with fake_stack() as stack:
        yield stack


@pytest.fixture
def fake(running_fakes: FakeStack, monkeypatch: pytest.MonkeyPatch) -> FakeStack:
    running_fakes.reset()
    for name, value in running_fakes.env().items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    sample_airflow(running_fakes.airflow)
    sample_registry(running_fakes.mlflow)
    running_fakes.inference.dispatches, running_fakes.inference.details = sample_dispatches()
    return running_fakes


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One users file per module (Argon2 hashing is slow on purpose), copied into each test's state."""
    store = UserStore(tmp_path_factory.mktemp("ui-users") / "users.yaml")
    store.add("ada", Role.ADMIN, PASSWORD)
    store.add("dora", Role.DISPATCH_USER, PASSWORD)
    store.add("sam", Role.SHOWROOM_USER, PASSWORD)
    return store.path


@pytest.fixture
def users(users_file: Path) -> UserStore:
    store = UserStore(get_settings().ui_users_file)
    store.path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(users_file, store.path)
    return store


def app_as(username: str, role: Role) -> AppTest:
    """The app with a signed-in session (the sign-in form itself is tested separately)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state[USER_KEY] = SignedIn(username, role)
    return at.run()


def open_page(at: AppTest, page: str) -> AppTest:
    return at.switch_page(PAGES[page]).run()


def texts(elements: Any) -> str:
    return "\n".join(str(element.value) for element in elements)


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


# --- sign-in and roles ----------------------------------------------------------------------------


def sign_in(username: str, password: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click()
    return at.run()


def test_sign_in_with_the_right_password_shows_the_roles_pages(fake: FakeStack, users: UserStore) -> None:
    at = sign_in("sam", PASSWORD)
    no_exception(at)
    assert at.session_state[USER_KEY] == SignedIn("sam", Role.SHOWROOM_USER)
    assert "Signed in as **sam** (ShowroomUser)" in texts(at.sidebar.markdown)
    assert at.title[0].value == "Predict the forest cover type"


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(
    fake: FakeStack, users: UserStore
) -> None:
    at = sign_in("sam", "not the password")
    assert USER_KEY not in at.session_state
    assert "Wrong username or password." in texts(at.error)
    unknown = sign_in("nobody", PASSWORD)
    assert "Wrong username or password." in texts(unknown.error)


def test_no_users_yet_says_how_to_create_the_first_admin(fake: FakeStack) -> None:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert "ancora users add --role Admin" in texts(at.info)


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.ADMIN, {"Predict", "Models", "Pipelines", "Monitor", "Dispatches"}),
        (Role.DISPATCH_USER, {"Dispatches", "Monitor"}),
        (Role.SHOWROOM_USER, {"Predict"}),
    ],
)
def test_each_role_reaches_only_its_pages(
    fake: FakeStack, users: UserStore, role: Role, allowed: set[str]
) -> None:
    name = {Role.ADMIN: "ada", Role.DISPATCH_USER: "dora", Role.SHOWROOM_USER: "sam"}[role]
    at = app_as(name, role)
    no_exception(at)
    for page, path in PAGES.items():
        if page in allowed:
            open_page(at, page)
            no_exception(at)
            assert at.title[0].value, page
        else:
            with pytest.raises(ValueError, match="Could not find a navigation page"):
                at.switch_page(path)


def test_a_removed_user_is_signed_out_at_the_next_page_load(fake: FakeStack, users: UserStore) -> None:
    at = app_as("sam", Role.SHOWROOM_USER)
    users.remove("sam")
    at.run()
    assert "please sign in again" in texts(at.warning)
    assert USER_KEY not in at.session_state


# --- Predict ----------------------------------------------------------------------------------------


def point_at_nothing(monkeypatch: pytest.MonkeyPatch, variable: str, path: str = "") -> None:
    """A service that is down: its URL names a loopback port nothing listens on."""
    monkeypatch.setenv(variable, f"http://127.0.0.1:{free_port()}{path}")
    get_settings.cache_clear()


def test_predict_form_is_built_from_the_schema(fake: FakeStack, users: UserStore) -> None:
    at = app_as("sam", Role.SHOWROOM_USER)
    numbers = {widget.label: widget for widget in at.number_input}
    for column in FEATURES:
        if column.kind == CATEGORICAL:
            choice = at.selectbox(key=f"predict_field_{column.name}")
            assert tuple(choice.options) == column.choices
        else:
            assert numbers[column.name].min == column.minimum
            assert numbers[column.name].max == column.maximum
    assert "Served model: **covertype v3**" in texts(at.caption)


def test_predict_one_sample_row_shows_class_name_version_and_probabilities(
    fake: FakeStack, users: UserStore
) -> None:
    at = app_as("sam", Role.SHOWROOM_USER)
    at.selectbox(key="sample_choice").set_value(1)
    at.button(key="fill_sample").click().run()
    assert at.number_input(key="predict_field_Elevation").value == int(sample_rows()[1]["Elevation"])
    submit = next(button for button in at.button if button.label == "Predict")
    submit.click().run()
    no_exception(at)
    message = texts(at.success)
    assert "Predicted cover type **2: Lodgepole Pine** by model covertype v3." in message, message
    assert ("Model version", "3") in [(m.label, m.value) for m in at.metric]
    sent = [body for method, path, body in fake.inference.requests if path == "/predict"]
    row = json.loads(sent[-1])
    assert list(row) == list(FEATURE_NAMES)
    assert row["Soil_Type"] == sample_rows()[1]["Soil_Type"]
    assert isinstance(row["Elevation"], int)


def test_predict_a_csv_file_in_one_batch_call(fake: FakeStack, users: UserStore) -> None:
    content = sample_csv(rows=20).encode()
    at = app_as("sam", Role.SHOWROOM_USER)
    at.file_uploader(key="csv_upload").set_value(("rows.csv", content, "text/csv"))
    at.run()
    at.button(key="score_csv").click().run()
    no_exception(at)
    assert "20 rows scored by covertype v3." in texts(at.success)
    result = at.dataframe[-1].value
    assert len(result) == 20
    assert {"predicted_class", "class_name", "probability"} <= set(result.columns)
    assert any(button.label == "Download the predictions (CSV)" for button in at.get("download_button"))
    batches = [body for method, path, body in fake.inference.requests if path == "/predict/batch"]
    assert batches == [content]


def test_a_csv_without_a_feature_column_is_refused_with_the_reason(fake: FakeStack, users: UserStore) -> None:
    at = app_as("sam", Role.SHOWROOM_USER)
    at.file_uploader(key="csv_upload").set_value(("bad.csv", b"Elevation,Aspect\n3000,10\n", "text/csv"))
    at.run()
    at.button(key="score_csv").click().run()
    assert "The file was refused" in texts(at.error)
    assert "Slope" in texts(at.error)


def test_no_champion_yet_says_how_to_get_one(fake: FakeStack, users: UserStore) -> None:
    fake.inference.serving = False
    at = app_as("sam", Role.SHOWROOM_USER)
    warning = texts(at.warning)
    assert "No model is served yet" in warning
    assert "covertype_train" in warning


def test_inference_down_names_the_service_and_how_to_start_it(
    fake: FakeStack, users: UserStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at_nothing(monkeypatch, "ANCORA_UI_INFERENCE_URL")
    at = app_as("sam", Role.SHOWROOM_USER)
    no_exception(at)
    error = texts(at.error)
    assert "The inference API is not reachable" in error
    assert "uv run ancora serve" in error
    assert "Traceback" not in error


# --- Models -----------------------------------------------------------------------------------------


def test_models_lists_versions_aliases_gate_and_candidates(fake: FakeStack, users: UserStore) -> None:
    at = open_page(app_as("ada", Role.ADMIN), "Models")
    no_exception(at)
    assert {(m.label, m.value) for m in at.metric} == {("@champion", "v1"), ("@challenger", "v2")}
    versions = at.dataframe[0].value
    assert list(versions["version"]) == [2, 1]
    assert list(versions["gate decision"]) == ["kept", "first"]
    assert list(versions["aliases"]) == ["challenger", "champion"]
    assert versions["MLflow"][0].endswith("/#/models/covertype/versions/2")
    assert list(versions["engine"]) == ["onnxruntime", "scikit-learn"]
    assert versions["label parity"][0] == 1.0 and versions["crossover rows"][0] == "2048"
    served = " ".join(m.value for m in at.markdown)
    assert "served by **onnxruntime+scikit-learn** (ONNX Runtime below 2048 rows per call" in served
    assert "labels 100.0000%" in served

    at.selectbox(key="models_version").set_value("2").run()
    no_exception(at)
    assert "Gate: **kept**" in texts(at.info)
    assert "does not beat champion v1" in texts(at.info)
    candidates = at.dataframe[-1].value
    assert list(candidates["validation_macro_f1"]) == [0.73, 0.71, 0.56]
    assert candidates["MLflow run"][0].endswith("/#/experiments/1/runs/cand-2-0")
    families = at.dataframe[-2].value
    assert set(families["family"]) == {"random_forest", "logistic_regression"}


def test_models_without_any_version_says_how_to_train(fake: FakeStack, users: UserStore) -> None:
    fake.mlflow.versions.clear()
    at = open_page(app_as("ada", Role.ADMIN), "Models")
    assert "No version of `covertype` is registered yet" in texts(at.info)


def test_mlflow_down_names_it(fake: FakeStack, users: UserStore, monkeypatch: pytest.MonkeyPatch) -> None:
    point_at_nothing(monkeypatch, "ANCORA_MLFLOW_TRACKING_URI")
    at = open_page(app_as("ada", Role.ADMIN), "Models")
    no_exception(at)
    assert "MLflow is not reachable" in texts(at.error)
    assert "make up" in texts(at.error)


# --- Pipelines --------------------------------------------------------------------------------------


def test_pipelines_lists_dags_with_last_runs(fake: FakeStack, users: UserStore) -> None:
    at = open_page(app_as("ada", Role.ADMIN), "Pipelines")
    no_exception(at)
    dags = at.dataframe[0].value
    assert list(dags["DAG"]) == ["covertype_collect", "covertype_dispatch", "covertype_train"]
    assert list(dags["last run state"]) == ["success", "success", "never ran"]
    assert dags["Airflow"][0].endswith("/dags/covertype_collect")


def test_trigger_train_with_params_after_confirmation_and_follow_the_run(
    fake: FakeStack, users: UserStore
) -> None:
    at = open_page(app_as("ada", Role.ADMIN), "Pipelines")
    at.selectbox(key="trigger_dag").set_value("covertype_train").run()
    at.multiselect(key="param_covertype_train_families").set_value(["random_forest"])
    at.number_input(key="param_covertype_train_search_budget").set_value(2)
    at.button(key="trigger_request").click().run()
    assert fake.airflow.triggered == []
    assert (
        "Start a run of **covertype_train** now with families=['random_forest'], search_budget=2?"
        in texts(at.warning)
    )

    at.button(key="trigger_confirm").click().run()
    no_exception(at)
    assert fake.airflow.triggered == [
        ("covertype_train", {"families": ["random_forest"], "search_budget": 2})
    ]
    assert "Triggered covertype_train: run manual__1" in texts(at.success)
    for _ in range(3):
        at.run()
        if "succeeded" in texts(at.success):
            break
    assert "covertype_train run manual__1 succeeded in 42.0 s." in texts(at.success)


def test_cancelled_trigger_starts_nothing(fake: FakeStack, users: UserStore) -> None:
    at = open_page(app_as("ada", Role.ADMIN), "Pipelines")
    at.button(key="trigger_request").click().run()
    at.button(key="trigger_cancel").click().run()
    assert fake.airflow.triggered == []
    assert "Nothing was triggered." in texts(at.info)


def test_admin_pauses_and_unpauses_a_dag(fake: FakeStack, users: UserStore) -> None:
    at = open_page(app_as("ada", Role.ADMIN), "Pipelines")
    at.selectbox(key="pause_dag").set_value("covertype_train").run()
    assert at.button(key="pause_toggle").label == "Pause"
    at.button(key="pause_toggle").click().run()
    assert fake.airflow.patches == [("covertype_train", {"is_paused": True})]
    assert "covertype_train is now paused." in texts(at.success)
    assert at.button(key="pause_toggle").label == "Unpause"
    at.button(key="pause_toggle").click().run()
    assert fake.airflow.patches[-1] == ("covertype_train", {"is_paused": False})


def test_airflow_down_names_it(fake: FakeStack, users: UserStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCORA_AIRFLOW_PORT", str(free_port()))
    get_settings.cache_clear()
    at = open_page(app_as("ada", Role.ADMIN), "Pipelines")
    no_exception(at)
    assert "Airflow is not reachable" in texts(at.error)
    assert "make up" in texts(at.error)


# --- Monitor ----------------------------------------------------------------------------------------


def test_monitor_shows_health_schedules_datalake_and_collection(fake: FakeStack, users: UserStore) -> None:
    fake.inference.datalake = {
        "ok": True,
        "table": "lake.observations",
        "latency_ms": 3.2,
        "pending_rows": 42,
        "error": None,
    }
    at = open_page(app_as("dora", Role.DISPATCH_USER), "Monitor")
    no_exception(at)
    health = at.dataframe[0].value
    assert {
        "Airflow API server",
        "Airflow metadata database",
        "Airflow scheduler",
        "MLflow tracking server",
        "MLflow backend store",
        "Inference API",
        "Served model",
        "Datalake",
        "Data API",
        "Task service",
    } <= set(health["component"])
    assert health["response (ms)"].notna().all()
    assert "components are healthy" in texts(at.success)
    assert "connected, trivial query in 3.2 ms, 42 rows awaiting a prediction" in texts(at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Last dispatch"] == "11-20 11:00 UTC"
    assert metrics["Next dispatch"] == "11-20 12:05 UTC"
    collection = at.dataframe[-1].value
    assert list(collection["batch"]) == [1, 2]
    assert list(collection["collected"]) == [192, 190]
    assert list(collection["quarantined"]) == [2, 5]
    assert "Refreshes every 2 s" in texts(at.caption)


def test_monitor_names_each_service_that_is_down(
    fake: FakeStack, users: UserStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at_nothing(monkeypatch, "ANCORA_DATA_API_URL")
    fake.inference.datalake = {
        "ok": False,
        "table": "lake.observations",
        "latency_ms": None,
        "pending_rows": None,
        "error": "connection refused",
    }
    fake.airflow.health["scheduler"] = {"status": "unhealthy", "latest_scheduler_heartbeat": None}
    at = open_page(app_as("ada", Role.ADMIN), "Monitor")
    no_exception(at)
    errors = texts(at.error)
    assert "**Data API**: not reachable" in errors
    assert "uv run ancora data-api" in errors
    assert "**Airflow scheduler**: unhealthy" in errors
    assert "Datalake table `lake.observations` is not usable: connection refused" in errors
    assert errors.count("connection refused") == 1, "the datalake's reason is shown once"


# --- Dispatches -------------------------------------------------------------------------------------


def test_dispatches_lists_the_default_window_and_shows_one_dispatch(
    fake: FakeStack, users: UserStore
) -> None:
    at = open_page(app_as("dora", Role.DISPATCH_USER), "Dispatches")
    no_exception(at)
    listed = at.dataframe[0].value
    assert list(listed["id"]) == ["d-ok", "d-failed"]
    assert at.datetime_input(key="dispatch_start").value == datetime(2026, 11, 19, 12, 0)
    assert "Succeeded with model covertype v3." in texts(at.success)
    events = at.dataframe[1].value
    assert list(events["event"]) == ["started", "collected", "predicted", "persisted", "finished"]
    predictions = at.dataframe[2].value
    assert list(predictions["status"]) == ["ok", "ok", "invalid"]
    downloads = {button.label for button in at.get("download_button")}
    assert downloads == {"Download this list (CSV)", "Download the predictions (CSV)"}


def test_dispatches_filter_by_state_and_show_a_failure(fake: FakeStack, users: UserStore) -> None:
    at = open_page(app_as("dora", Role.DISPATCH_USER), "Dispatches")
    at.selectbox(key="dispatch_state").set_value("failed").run()
    no_exception(at)
    assert list(at.dataframe[0].value["id"]) == ["d-failed"]
    assert "Failed: datalake unreachable: connection refused" in texts(at.error)
    assert list(at.dataframe[1].value["event"]) == ["started", "failed"]
    sent = [path for method, path, body in fake.inference.requests if path.startswith("/dispatches?")]
    assert "state=failed" in sent[-1]
    assert "start=2026-11-19T12%3A00%3A00%2B00%3A00" in sent[-1]


def test_dispatches_text_filter_and_empty_window(fake: FakeStack, users: UserStore) -> None:
    at = open_page(app_as("dora", Role.DISPATCH_USER), "Dispatches")
    at.text_input(key="dispatch_filter").input("no such thing").run()
    assert "No dispatch in this window matches the filter." in texts(at.info)


def test_dispatches_inference_down_names_it(
    fake: FakeStack, users: UserStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at_nothing(monkeypatch, "ANCORA_UI_INFERENCE_URL")
    at = open_page(app_as("dora", Role.DISPATCH_USER), "Dispatches")
    no_exception(at)
    assert "The inference API is not reachable" in texts(at.error)
