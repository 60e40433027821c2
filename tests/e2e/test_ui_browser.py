"""The Streamlit app in a real browser (Debian's chromium driven by Playwright) on the native stack.

The stack is started as `make up` starts it (free ports, temporary state), users are created with the
real `ancora users add` command, a real model is registered on the stack's MLflow under `champion`,
and a person's path is followed: sign in as each role and see only its pages, predict one row,
score a CSV file, trigger a DAG and watch its run. Screenshots go to test-artifacts/ui/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ancora.config import PROJECT_ROOT
from ancora.schema import COVER_TYPE_NAMES
from tests.support.inference import log_covertype_model, register, wait_ready
from tests.support.native_stack import RunningStack, native_stack, wait_for

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "ui"
PASSWORD = "browser-test-password"
USERS = {"ada": "Admin", "dora": "DispatchUser", "sam": "ShowroomUser"}
ALLOWED = {
    "ada": {"Predict", "Models", "Pipelines", "Monitor", "Dispatches"},
    "dora": {"Dispatches", "Monitor"},
    "sam": {"Predict"},
}
WAIT_MS = 60_000


def ensure_chromium() -> Path:
    """Debian's chromium, installed with apt-get when missing; skip only when it cannot be installed."""
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        pytest.skip(f"{CHROMIUM} is missing and there is no apt-get to install Debian's chromium")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            pytest.skip(f"{CHROMIUM} is missing and installing it needs root (no sudo)")
        prefix = ["sudo", "-n"]
    install = [*prefix, "apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    installed = subprocess.run(install, capture_output=True, text=True, timeout=900, check=False)
    if installed.returncode != 0:
        subprocess.run([*prefix, "apt-get", "update"], capture_output=True, timeout=600, check=False)
        installed = subprocess.run(install, capture_output=True, text=True, timeout=900, check=False)
    if installed.returncode != 0 or not CHROMIUM.exists():
        pytest.skip(f"could not install Debian's chromium: {(installed.stdout + installed.stderr)[-800:]}")
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
    overrides = {
        "ANCORA_MODEL_POLL_INTERVAL_SECONDS": "1",
        "ANCORA_UI_REFRESH_SECONDS": "2",
        # Keep the scheduler's own training light should collection announce new rows meanwhile.
        "ANCORA_TRAIN_FAMILIES": "logistic_regression",
        "ANCORA_TRAIN_SEARCH_BUDGET": "1",
        "ANCORA_TRAIN_N_JOBS": "1",
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
        tracking_uri = running.settings.resolved_mlflow_tracking_uri
        frame = pd.read_csv(covertype_csv, nrows=3000)
        register(tracking_uri, "covertype", log_covertype_model(tracking_uri, frame, 10, 1), alias="champion")
        wait_ready(running.settings.inference_url, timeout=180)
        yield running


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
