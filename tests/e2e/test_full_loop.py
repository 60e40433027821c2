"""The whole loop on the native stack, started as `make up` starts it, with the real scheduler.

From an empty state folder: the simulator rotates its batches every few seconds, `covertype_collect`
runs back to back and publishes the raw-data Asset, the Asset schedules `covertype_train`, the first
model becomes champion and the inference service serves it; more batches arrive, a challenger that
beats the champion on the frozen evaluation set is promoted, the same inference process swaps to it,
and the Streamlit app's Predict page answers with it. Nothing is triggered by hand: every step is
the product's own schedule, and every assertion reads a public interface (Airflow REST v2, the MLflow
client over HTTP, the inference API, the Streamlit app).

The accelerated settings are the ones docs/operations-native.md documents (ACCELERATED_LOOP). The
simulator runs in its default `reference` mode on purpose, as the course's server does: every batch
samples group 1's one slice of 2,000 rows, so later models learn from more of the slice (contents
accumulate over the requests) while the same contents keep arriving under new batch numbers. That is
the case where an evaluation set held out by row id leaked into training (issue #14), so the test also
checks, through each registered version's own lineage, that no training read an evaluation content.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from ancora.assets import RAW_COVERTYPE_URI
from ancora.config import get_settings
from ancora.locations import ui_script
from ancora.serving.rows import EXAMPLE_ROW
from ancora.stack.processes import process_info
from tests.support.lineage import contents_of, every_evaluation_content, logged_queries
from tests.support.native_stack import ACCELERATED_LOOP, RunningStack, all_pages, native_stack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

ROTATION_SECONDS = 20
"""Ten batches in a little over three minutes: time for several trainings on growing data."""
COLLECT_DAG = "covertype_collect"
TRAIN_DAG = "covertype_train"
FIRST_CHAMPION_TIMEOUT = 360
PROMOTION_TIMEOUT = 420
SWAP_TIMEOUT = 60
RUN_FINISH_TIMEOUT = 120
UI_APP = ui_script()
UI_USER, UI_PASSWORD = "e2e-showroom", "a long enough e2e password"

HTTP = httpx.Client(timeout=30, trust_env=False)


def champion(registry: MlflowClient, name: str) -> ModelVersion | None:
    try:
        return registry.get_model_version_by_alias(name, "champion")
    except MlflowException as problem:
        if problem.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def trained_on(registry: MlflowClient, version: ModelVersion) -> tuple[set[int], int]:
    """The batches and the number of training rows the version's run read (the parent run's tags)."""
    tags = registry.get_run(version.tags["run_id"]).data.tags
    return {int(batch) for batch in tags["ancora.batches"].split(",")}, int(tags["ancora.rows"])


def training_run_of(airflow: httpx.Client, version: str) -> dict[str, Any] | None:
    """The finished covertype_train run whose task registered `version`, with the asset events it
    consumed; None while that run is still finishing (the alias moves before the task returns)."""
    for run in reversed(all_pages(airflow, f"/api/v2/dags/{TRAIN_DAG}/dagRuns", "dag_runs")):
        if run["state"] != "success":
            continue
        base = f"/api/v2/dags/{TRAIN_DAG}/dagRuns/{run['dag_run_id']}"
        result = airflow.get(
            f"{base}/taskInstances/train/xcomEntries/return_value", params={"deserialize": True}
        )
        if result.status_code != 200:
            continue
        value = result.json()["value"]
        outcome = json.loads(value) if isinstance(value, str) else value
        if str(outcome["version"]) == version:
            events = airflow.get(f"{base}/upstreamAssetEvents")
            events.raise_for_status()
            return {**run, "result": outcome, "events": events.json()["asset_events"]}
    return None


def assert_trained_by_an_asset_triggered_run(stack: RunningStack, version: str) -> None:
    with stack.airflow() as airflow:
        run = wait_for(lambda: training_run_of(airflow, version), RUN_FINISH_TIMEOUT)
    assert run is not None, f"no successful {TRAIN_DAG} run registered version {version}"
    assert run["run_type"] == "asset_triggered", run
    assert run["events"], f"{run['dag_run_id']} consumed no asset event"
    for event in run["events"]:
        assert event["uri"] == RAW_COVERTYPE_URI, event
        assert event["source_dag_id"] == COLLECT_DAG, event
        assert event["extra"]["inserted"] > 0, event


def assert_no_evaluation_content_was_trained_on(stack: RunningStack, registry: MlflowClient) -> int:
    """Every registered version's training read (its logged query, re-run on the store) against every
    evaluation set version the store holds now; returns how many versions were checked."""
    store_url = stack.settings.data_db_url
    held_out = every_evaluation_content(store_url)
    assert held_out, "no evaluation set was drawn"
    versions = registry.search_model_versions(f"name='{stack.settings.registered_model_name}'")
    for version in versions:
        queries = logged_queries(registry, version.tags["run_id"])
        trained = set(contents_of(store_url, queries["training"]))
        evaluated = contents_of(store_url, queries["evaluation"])
        assert trained and evaluated
        assert len(set(evaluated)) == len(evaluated), "the evaluation set scores each content once"
        leaked = trained & held_out
        assert not leaked, f"v{version.version} trained on {len(leaked)} evaluation contents"
    checked = stack.ancora("data", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return len(versions)


def failed_runs(stack: RunningStack) -> list[str]:
    """Every failed DAG run so far, as "dag_id run_id": a young stack must have none (issue #17)."""
    with stack.airflow() as airflow:
        dags = all_pages(airflow, "/api/v2/dags", "dags")
        return [
            f"{dag['dag_id']} {run['dag_run_id']}"
            for dag in dags
            for run in all_pages(airflow, f"/api/v2/dags/{dag['dag_id']}/dagRuns", "dag_runs", state="failed")
        ]


def skipped_reasons(stack: RunningStack, dag_id: str, task_id: str) -> int:
    """How many runs of ``dag_id`` ended with ``task_id`` skipped."""
    with stack.airflow() as airflow:
        runs = all_pages(airflow, f"/api/v2/dags/{dag_id}/dagRuns", "dag_runs")
        skipped = 0
        for run in runs:
            answer = airflow.get(f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances/{task_id}")
            skipped += answer.status_code == 200 and answer.json()["state"] == "skipped"
        return skipped


def served(stack: RunningStack) -> dict[str, Any]:
    response = HTTP.get(f"{stack.settings.inference_url}/models")
    response.raise_for_status()
    return dict(response.json())


def predict(stack: RunningStack) -> httpx.Response:
    return HTTP.post(f"{stack.settings.inference_url}/predict", json=EXAMPLE_ROW)


def wait_until_served(stack: RunningStack, version: str) -> dict[str, Any]:
    def answered() -> dict[str, Any] | None:
        answer = predict(stack)
        return (
            answer.json() if answer.status_code == 200 and answer.json()["model_version"] == version else None
        )

    answer = wait_for(answered, SWAP_TIMEOUT, every=1)
    assert answer, f"version {version} not served within {SWAP_TIMEOUT} s: {served(stack)}"
    return answer


def assert_prediction(answer: dict[str, Any], version: ModelVersion) -> None:
    assert answer["model_name"] == version.name
    assert answer["model_version"] == version.version
    assert 1 <= answer["prediction"] <= 7
    assert answer["class_name"]
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-6, answer


def predict_in_the_streamlit_app(stack: RunningStack, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Sign in to the real app (ancora_ui/app.py) and predict a sample row through the inference API."""
    from streamlit.testing.v1 import AppTest

    added = stack.ancora(
        "users", "add", UI_USER, "--role", "ShowroomUser", "--password-stdin", stdin=f"{UI_PASSWORD}\n"
    )
    assert added.returncode == 0, added.stdout + added.stderr
    # The app runs in this process, configured like the stack's own UI process.
    for name, value in stack.env.items():
        if name.startswith("ANCORA_"):
            monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    app = AppTest.from_file(str(UI_APP), default_timeout=60).run()
    app.text_input[0].input(UI_USER)
    app.text_input[1].input(UI_PASSWORD)
    app.button[0].click()
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.title[0].value == "Predict the forest cover type"
    app.button(key="fill_sample").click().run()
    next(button for button in app.button if button.label == "Predict").click().run()
    assert not app.exception, [e.value for e in app.exception]
    get_settings.cache_clear()
    return [str(element.value) for element in (*app.success, *app.caption)]


def test_data_in_better_model_out_served_and_predicted_in_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()

    def milestone(what: str) -> None:
        print(f"{time.monotonic() - started:6.0f} s  {what}", flush=True)

    overrides = {
        **ACCELERATED_LOOP,
        "ANCORA_SIMULATOR_ROTATION_SECONDS": str(ROTATION_SECONDS),
        "ANCORA_SIMULATOR_MODE": "reference",
        # The young phase, compressed: a dispatch and a health probe every minute, before any champion.
        "ANCORA_DISPATCH_SCHEDULE": "* * * * *",
        "ANCORA_HEALTH_WATCH_SCHEDULE": "* * * * *",
    }
    with native_stack(tmp_path, overrides) as stack:
        milestone("stack up")
        settings = stack.settings
        registry = MlflowClient(settings.mlflow_tracking_uri)
        model_name = settings.registered_model_name
        inference_pid = stack.service_pid("inference")
        inference_process = process_info(inference_pid)
        assert inference_process is not None

        # Empty: no champion yet, and the inference service says so instead of failing.
        assert champion(registry, model_name) is None
        not_ready = HTTP.get(f"{settings.inference_url}/ready")
        assert not_ready.status_code == 503, not_ready.text
        assert predict(stack).status_code == 503

        # Batches collected, training started by the Asset, a first champion registered.
        first = wait_for(lambda: champion(registry, model_name), FIRST_CHAMPION_TIMEOUT, every=3)
        assert first is not None, f"no champion within {FIRST_CHAMPION_TIMEOUT} s"
        milestone(f"champion v{first.version}")

        # A calm first run: too few rows and no champion yet were states (skipped), not failures.
        assert failed_runs(stack) == []
        assert skipped_reasons(stack, "covertype_dispatch", "dispatch") >= 1, "a dispatch ran while young"

        # The inference service serves it (checked first: the next promotion may be a training away).
        answer = wait_until_served(stack, first.version)
        first_served = served(stack)
        ready = HTTP.get(f"{settings.inference_url}/ready")
        milestone(f"v{first.version} served")
        assert_prediction(answer, first)
        assert first_served["version"] == first.version and first_served["run_id"] == first.run_id
        assert ready.status_code == 200 and ready.json()["model_version"] == first.version

        assert first.tags["gate_decision"] == "first", first.tags
        assert "no champion yet" in first.description
        first_batches, first_rows = trained_on(registry, first)
        with stack.airflow() as airflow:
            collected = all_pages(airflow, "/api/v2/assets/events", "asset_events", source_dag_id=COLLECT_DAG)
            assert collected and all(event["uri"] == RAW_COVERTYPE_URI for event in collected)
            assert first_batches <= {event["extra"]["batch"] for event in collected}
        assert_trained_by_an_asset_triggered_run(stack, first.version)

        # More batches, and a challenger that beats the champion on the frozen evaluation set.
        def promoted() -> ModelVersion | None:
            current = champion(registry, model_name)
            return current if current is not None and current.version != first.version else None

        better = wait_for(promoted, PROMOTION_TIMEOUT, every=3)
        if better is None:
            versions = registry.search_model_versions(f"name='{model_name}'")
            decisions = sorted(
                (int(v.version), v.tags.get("gate_decision"), v.tags.get("macro_f1")) for v in versions
            )
            pytest.fail(f"champion still v{first.version} after {PROMOTION_TIMEOUT} s; versions: {decisions}")
        milestone(f"champion v{better.version} promoted over v{first.version}")

        # The same inference process swaps to it: no restart.
        answer = wait_until_served(stack, better.version)
        swapped = served(stack)
        milestone(f"v{better.version} served by the same inference process")
        assert_prediction(answer, better)
        assert swapped["version"] == better.version
        assert datetime.fromisoformat(swapped["loaded_at"]) > datetime.fromisoformat(
            first_served["loaded_at"]
        )
        assert stack.service_pid("inference") == inference_pid
        still = process_info(inference_pid)
        assert still is not None and still.start_ticks == inference_process.start_ticks

        # It was better on the frozen evaluation set, trained on more batches, by an Asset-triggered run.
        assert int(better.version) > int(first.version)
        assert better.tags["gate_decision"] == "promoted", better.tags
        margin = settings.promotion_margin
        assert float(better.tags["macro_f1"]) > float(better.tags["champion_macro_f1"]) + margin, better.tags
        assert "beats champion" in better.description
        better_batches, better_rows = trained_on(registry, better)
        assert first_batches <= better_batches and first_rows < better_rows, (first_rows, better_rows)
        assert_trained_by_an_asset_triggered_run(stack, better.version)

        # The Streamlit app (its server runs in the stack; its Predict page here) predicts through it.
        assert HTTP.get(f"{settings.ui_url}/_stcore/health").status_code == 200
        shown = predict_in_the_streamlit_app(stack, monkeypatch)
        answered_by = [re.search(rf"by model {model_name} v(\d+)\.", text) for text in shown]
        versions_shown = [int(match.group(1)) for match in answered_by if match]
        assert versions_shown, shown
        # The alias may have moved again meanwhile; the app answered with this champion or a later one.
        assert versions_shown[0] >= int(better.version), (versions_shown, better.version)
        shown_version = registry.get_model_version(model_name, str(versions_shown[0]))
        assert shown_version.tags["gate_decision"] in ("first", "promoted"), shown_version.tags

        milestone("the Streamlit app predicted through it")

        # Under the reference server's repeated contents, no training read an evaluation content.
        checked = assert_no_evaluation_content_was_trained_on(stack, registry)
        milestone(f"no evaluation content in the training reads of {checked} versions")
        assert failed_runs(stack) == [], "no run failed in the whole loop"
