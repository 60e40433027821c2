"""The Streamlit app in a real browser (Debian's chromium driven by Playwright) on the native stack.

The stack is started as `make up` starts it (free ports, temporary state), users are created with the
real `ancora users add` command, a real model is registered on the stack's MLflow under `champion`,
and a person's path is followed: sign in as each role and see only its pages, predict one row,
score a CSV file, trigger a DAG and watch its run. Screenshots go to test-artifacts/ui/.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient

from ancora.schema import COVER_TYPE_NAMES
from tests.support.inference import log_covertype_model, register, wait_ready
from tests.support.native_stack import RunningStack, native_stack, wait_for
from tests.support.repo import REPO_ROOT

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui"
PASSWORD = "browser-test-password"
USERS = {"ada": "Admin", "dora": "DispatchUser", "sam": "ShowroomUser"}
ALLOWED = {
    "ada": {"Predict", "Models", "Pipelines", "Monitor", "Dispatches", "Tasks"},
    "dora": {"Dispatches", "Monitor", "Tasks"},
    "sam": {"Predict", "Tasks"},
}
TASK_SERVICE_ADMIN, TASK_SERVICE_PASSWORD = "ui-service", "ui-service-password"
JOB = 'echo "job started $*"\nsleep 600\n'
"""A shell job: local jobs run as nobody, who may not reach a virtualenv under /root, but /bin/sh."""
WAIT_MS = 60_000


def ensure_chromium() -> Path:
    """Debian's chromium, from scripts/install-test-system.sh (make test and .ci/run call it)."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run scripts/install-test-system.sh as root"
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = ensure_chromium()
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(executable), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, covertype_csv: Path) -> Iterator[RunningStack]:
    workdir = tmp_path_factory.mktemp("ui-browser")
    job_root = Path(tempfile.mkdtemp(prefix="ancora-ui-jobs-"))
    job_root.chmod(0o711)  # jobs run as nobody, who must pass through (pytest's folders are 0700)
    overrides = {
        "ANCORA_MODEL_POLL_INTERVAL_SECONDS": "1",
        "ANCORA_UI_REFRESH_SECONDS": "2",
        # Keep the scheduler's own training light should collection announce new rows meanwhile.
        "ANCORA_TRAIN_FAMILIES": "logistic_regression",
        "ANCORA_TRAIN_SEARCH_BUDGET": "1",
        "ANCORA_TRAIN_N_JOBS": "1",
        # Remote tasks run inline on this machine; the Tasks page reads them as a task service admin.
        "ANCORA_REMOTE_EXECUTOR": "inline",
        "ANCORA_REMOTE_LOCATIONS": '{"laptop":"local"}',
        "ANCORA_REMOTE_LOCAL_ENABLED": "true",
        "ANCORA_REMOTE_LOCAL_RUN_AS": "nobody",
        "ANCORA_REMOTE_LOCAL_WORK_ROOT": str(job_root),
        "ANCORA_UI_TASK_SERVICE_USERNAME": TASK_SERVICE_ADMIN,
        "ANCORA_UI_TASK_SERVICE_PASSWORD": TASK_SERVICE_PASSWORD,
        "ANCORA_MONITOR_EXTRA_HOSTS": '[{"name": "localhost DNS", "kind": "dns", "host": "localhost"}]',
    }
    with native_stack(workdir, overrides) as running:
        for name, role in USERS.items():
            added = subprocess.run(
                [sys.executable, "-m", "ancora", "users", "add", "--role", role, name, "--password-stdin"],
                input=f"{PASSWORD}\n",
                env=running.env,
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert added.returncode == 0, added.stdout + added.stderr
        # Only task service admins may run jobs on the service's own host (the inline "laptop" runner
        # here); the Tasks page filters by owner name whatever the task service role.
        for name, admin in ((TASK_SERVICE_ADMIN, True), ("sam", True), ("bob", True)):
            flags = ["--admin"] if admin else []
            added = subprocess.run(
                [sys.executable, "-m", "ancora", "task-service", "users", "add", name, *flags],
                env={**running.env, "ANCORA_NEW_USER_PASSWORD": TASK_SERVICE_PASSWORD},
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert added.returncode == 0, added.stdout + added.stderr
        tracking_uri = running.settings.mlflow_tracking_uri
        frame = pd.read_csv(covertype_csv, nrows=3000)
        first = log_covertype_model(tracking_uri, frame, 10, 1)
        second = log_covertype_model(tracking_uri, frame.iloc[1000:], 10, 2)
        client = MlflowClient(tracking_uri)
        for logged, decision in ((first, "first"), (second, "promoted")):
            version = register(tracking_uri, "covertype", logged, alias="champion")
            client.set_model_version_tag("covertype", version, "gate_decision", decision)
        wait_ready(running.settings.inference_url, timeout=180)
        seed_drift(running, frame)
        yield running
    shutil.rmtree(job_root, ignore_errors=True)


def seed_drift(running: RunningStack, frame: pd.DataFrame) -> None:
    """Real drift reports (three batches, the last one shifted) and an alert in the stack's events DB."""
    from ancora.monitoring.alerts import Alert, raise_alert
    from ancora.monitoring.drift import Reference, Thresholds, compare
    from ancora.monitoring.store import open_monitoring_store
    from ancora.schema import FEATURE_NAMES, LABEL_NAME, NUMERIC_FEATURES

    store = open_monitoring_store(running.settings.dispatch_events_db_url)
    reference = Reference("2", None, frame.iloc[:2000][list(FEATURE_NAMES)], frame.iloc[:2000][LABEL_NAME])
    for number, rows in enumerate((frame.iloc[2000:2500], frame.iloc[2500:3000], frame.iloc[2000:2500]), 1):
        current = rows[list(FEATURE_NAMES)].copy()
        if number == 3:  # moved far enough to breach: most features and the class mix
            for name in NUMERIC_FEATURES:
                current[name] = current[name] + 3 * current[name].std()
            current["Wilderness_Area"] = "Cache"
            labels = pd.Series([4] * len(rows))
        else:
            labels = rows[LABEL_NAME]
        report = compare(reference, current, labels, Thresholds(), kind="batch", subject=f"batch {number}")
        store.save_drift(report)
        time.sleep(1.1)
    raise_alert(
        store,
        Alert("drift", "drift:batch 3:v2", "drift over threshold in batch 3 against champion v2"),
        lambda a: [],
    )


def task_status(stack: RunningStack, task_id: str) -> str:
    import requests

    base = stack.settings.task_service_url
    login = {"username": TASK_SERVICE_ADMIN, "password": TASK_SERVICE_PASSWORD}
    token = requests.post(f"{base}/login", json=login, timeout=30).json()["access_token"]
    answer = requests.get(f"{base}/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return str(answer.json()["status"])


def submit_task(stack: RunningStack, user: str, tmp_path: Path) -> str:
    import requests

    dataset, processor = tmp_path / f"{user}-data.zip", tmp_path / f"{user}-processor.zip"
    with zipfile.ZipFile(dataset, "w") as archive:
        archive.writestr("rows.csv", "a,b\n1,2\n")
    with zipfile.ZipFile(processor, "w") as archive:
        archive.writestr("job.sh", JOB)
    base = stack.settings.task_service_url
    token = requests.post(
        f"{base}/login", json={"username": user, "password": TASK_SERVICE_PASSWORD}, timeout=30
    )
    token.raise_for_status()
    with dataset.open("rb") as data, processor.open("rb") as code:
        answer = requests.post(
            f"{base}/tasks",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            files={"dataset_file": ("data.zip", data), "processor_file": ("processor.zip", code)},
            data={
                "runner_location": "laptop",
                "execution_mode": "no-mlflow",
                "execution_command": "sh job.sh",
                "instance_type": "cpu",
                "experiment_name": f"{user}-experiment",
            },
            timeout=60,
        )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


@pytest.fixture(scope="module", autouse=True)
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def signed_in(browser: Any, stack: RunningStack, username: str, path: str = "") -> Any:
    """A fresh browser context (its own session) signed in as ``username`` at ``path``."""
    context = browser.new_context(viewport={"width": 1400, "height": 2400})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{stack.settings.ui_url}{path}")
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {username}").wait_for()
    return page


def nav_titles(page: Any) -> set[str]:
    links = page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()
    return {text.strip().splitlines()[-1].strip() for text in links}


def no_exception(page: Any) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in page.content()


def shot(page: Any, name: str) -> None:
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("username", ["sam", "dora", "ada"])
def test_each_role_sees_only_its_pages(browser: Any, stack: RunningStack, username: str) -> None:
    page = signed_in(browser, stack, username)
    role = USERS[username]
    assert page.get_by_text(f"Signed in as {username} ({role})").is_visible()
    if len(ALLOWED[username]) == 1:
        # Streamlit hides the menu when a role has one page: that page is all there is.
        assert nav_titles(page) == set()
        page.get_by_role("heading", name="Predict the forest cover type").wait_for()
    else:
        # The menu is drawn a moment after the sidebar's greeting: wait for it, then compare.
        shown = wait_for(
            lambda: nav_titles(page) if len(nav_titles(page)) >= len(ALLOWED[username]) else None, 60, 0.5
        )
        assert shown == ALLOWED[username]
    no_exception(page)
    shot(page, f"role-{role}")
    forbidden = sorted({"Predict", "Pipelines", "Dispatches"} - ALLOWED[username])
    for title in forbidden:
        refused = signed_in(browser, stack, username, f"/{title.lower()}")
        refused.get_by_text(f"The {title} page is not available to the {role} role.").wait_for()
        shot(refused, f"role-{role}-refused-{title}")
        refused.context.close()
    page.context.close()


def test_showroom_user_predicts_one_row(browser: Any, stack: RunningStack) -> None:
    page = signed_in(browser, stack, "sam")
    page.get_by_text("Served model: covertype v").wait_for()
    page.get_by_role("button", name="Predict", exact=True).click()
    result = page.get_by_text("Predicted cover type")
    result.wait_for()
    text = result.inner_text()
    match = re.search(r"Predicted cover type (\d): (.+?) by model covertype v(\d+)", text)
    assert match, text
    assert COVER_TYPE_NAMES[int(match.group(1))] == match.group(2)
    no_exception(page)
    shot(page, "predict-one-row")
    page.context.close()


def test_showroom_user_scores_a_csv_file(
    browser: Any, stack: RunningStack, covertype_csv: Path, tmp_path: Path
) -> None:
    upload = tmp_path / "rows.csv"
    pd.read_csv(covertype_csv, nrows=200, dtype=str).to_csv(upload, index=False)
    page = signed_in(browser, stack, "sam")
    page.get_by_role("tab", name="CSV file").click()
    page.locator('input[type="file"]').set_input_files(str(upload))
    page.get_by_text("rows.csv: 200 rows, 13 columns.").wait_for()
    page.get_by_role("button", name="Score the file").click()
    page.get_by_text("200 rows scored by covertype v").wait_for()
    page.get_by_role("button", name="Download the predictions (CSV)").wait_for()
    no_exception(page)
    shot(page, "predict-csv-file")
    page.context.close()


def test_admin_triggers_a_dag_and_watches_its_run(browser: Any, stack: RunningStack) -> None:
    page = signed_in(browser, stack, "ada")
    page.get_by_role("link", name="Pipelines").click()
    trigger = page.get_by_role("button", name="Trigger covertype_collect")
    trigger.wait_for(timeout=180_000)  # the DAG processor may still be parsing dags/
    trigger.click()
    page.get_by_text("Start a run of covertype_collect now with no parameters?").wait_for()
    shot(page, "pipelines-confirm")
    page.get_by_role("button", name="Confirm").click()
    triggered = page.get_by_text("Triggered covertype_collect: run")
    triggered.wait_for()
    run_id = re.search(r"run (\S+) is", triggered.inner_text()).group(1)
    page.get_by_role("heading", name="Runs started here").wait_for()
    shot(page, "pipelines-triggered")

    with stack.airflow() as airflow:
        response = airflow.get(f"/api/v2/dags/covertype_collect/dagRuns/{run_id}")
    assert response.status_code == 200, response.text
    assert response.json()["note"] == "triggered from the Ancora app by ada"

    ended = page.get_by_text(re.compile(rf"covertype_collect run {re.escape(run_id)} (succeeded|failed)"))
    ended.wait_for(timeout=300_000)
    no_exception(page)
    shot(page, "pipelines-run-ended")
    page.context.close()


def test_monitor_models_and_dispatches_render(browser: Any, stack: RunningStack) -> None:
    page = signed_in(browser, stack, "ada")
    page.get_by_role("link", name="Monitor").click()
    page.get_by_role("heading", name="Services").wait_for()
    page.get_by_role("heading", name="DAG schedules").wait_for()
    page.get_by_text("Refreshes every 2 s").wait_for()
    # The run triggered above stored rows: its `store` XCom, read over Airflow's REST API, feeds the chart.
    page.get_by_text("Rows stored and quarantined per batch over the latest").wait_for()
    no_exception(page)
    shot(page, "monitor")
    page.get_by_role("link", name="Models").click()
    page.get_by_role("heading", name="Versions").wait_for()
    no_exception(page)
    shot(page, "models")
    page.get_by_role("link", name="Dispatches").click()
    page.get_by_role("heading", name="Dispatches").wait_for()
    assert wait_for(lambda: page.locator('[data-testid="stSpinner"]').count() == 0, 30, every=1)
    no_exception(page)
    shot(page, "dispatches")
    page.context.close()


def test_monitor_plots_drift_class_mix_alerts_and_extra_hosts(browser: Any, stack: RunningStack) -> None:
    page = signed_in(browser, stack, "dora")
    page.get_by_role("link", name="Monitor").click()
    page.get_by_role("heading", name="Drift against the champion's training data").wait_for()
    page.get_by_text("Per-feature drift score of collected batches").wait_for()
    # The seeded reports, or a newer one the stack's own covertype_drift_batch made since.
    latest_mix = re.compile(r"^Class mix of the latest report \(batch batch \d+, champion v\d+, ")
    page.get_by_text(latest_mix).wait_for()
    page.get_by_role("heading", name="Alerts").wait_for()
    page.get_by_text("Events database (sqlite) answers in").wait_for()
    page.get_by_role("heading", name="Extra hosts").wait_for()
    # The page reruns every 2 s; a chart is mounted again after each rerun, so count until both are drawn.
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    assert wait_for(lambda: charts.count() >= 2 or None, 30, every=0.5), "drift over time and the class mix"
    no_exception(page)
    shot(page, "monitor-top")
    page.get_by_role("heading", name="Events database").scroll_into_view_if_needed()
    page.get_by_role("heading", name="Events database").evaluate("element => element.scrollIntoView()")
    shot(page, "monitor-drift")
    page.context.close()


def test_tasks_page_shows_each_user_their_tasks_and_cancels(
    browser: Any, stack: RunningStack, tmp_path: Path
) -> None:
    mine = submit_task(stack, "sam", tmp_path)
    theirs = submit_task(stack, "bob", tmp_path)
    page = signed_in(browser, stack, "sam")
    page.get_by_role("link", name="Tasks").click()
    page.get_by_text("Tasks submitted as `sam`.".replace("`", "")).wait_for()
    page.get_by_text(mine).first.wait_for(state="attached")  # a table cell (the grid draws on a canvas)
    assert page.get_by_text(theirs).count() == 0, "another user's task is not shown"
    page.locator('[data-testid="stCode"]').first.wait_for()  # the log tail of the chosen task
    shown = page.get_by_text(re.compile(r"^[A-Z]+ on ")).first
    shown.wait_for()
    assert shown.inner_text().split()[0] == task_status(stack, mine), "the page shows the service's status"
    shot(page, "tasks-user")
    assert wait_for(lambda: task_status(stack, mine) == "RUNNING" or None, 90, 1), task_status(stack, mine)
    page.get_by_text(re.compile(r"^RUNNING on ")).first.wait_for()  # the list refreshes by itself
    page.get_by_role("button", name="Cancel this task").click()
    assert wait_for(lambda: task_status(stack, mine) == "CANCELLED" or None, 90, 1)
    page.get_by_text(re.compile(r"CANCELLED on")).wait_for()
    no_exception(page)
    page.context.close()
    admin = signed_in(browser, stack, "ada")
    admin.get_by_role("link", name="Tasks").click()
    admin.get_by_text("Everyone's tasks (Admin).").wait_for()
    admin.get_by_text(theirs).first.wait_for(state="attached")
    admin.get_by_text(mine).first.wait_for(state="attached")
    no_exception(admin)
    shot(admin, "tasks-admin")
    admin.context.close()


def test_admin_rolls_the_champion_back_from_the_models_page(browser: Any, stack: RunningStack) -> None:
    page = signed_in(browser, stack, "ada")
    page.get_by_role("link", name="Models").click()
    page.get_by_text("Roll @champion back (Admin)").click()
    page.get_by_role("textbox", name="Why (recorded on both versions)").fill("v2 looks wrong")
    page.get_by_role("button", name="Roll back").click()
    page.get_by_text("Tick the confirmation first.").wait_for()
    page.get_by_text("Yes, move @champion away from v2").click()
    page.get_by_role("button", name="Roll back").click()
    page.get_by_text("@champion now points at v1 (was v2)").wait_for()
    no_exception(page)
    shot(page, "models-rollback")
    page.context.close()
    client = MlflowClient(stack.settings.mlflow_tracking_uri)
    assert client.get_model_version_by_alias("covertype", "champion").version == "1"
    assert client.get_model_version("covertype", "2").tags["ancora.rolled_back.by"] == "ada"
    served = wait_for(
        lambda: httpx_get(f"{stack.settings.inference_url}/models").get("version") == "1" or None, 30, 0.5
    )
    assert served, "the inference API followed the rollback"


def httpx_get(url: str) -> dict[str, Any]:
    import httpx

    return dict(httpx.get(url, timeout=10).json())
