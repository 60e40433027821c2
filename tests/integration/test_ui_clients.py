"""The app's MLflow client and Models page against a real MLflow server and real training runs.

The AppTests in tests/unit fake MLflow at the HTTP boundary; this checks that the fake's shapes are
the real ones: the registry's aliases and version tags, the training run's gate tags and per-family
evaluation metrics, and the candidate runs nested under it, exactly as `train_and_register` writes them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ancora.clients.mlflow import MlflowError, MlflowRestClient
from ancora.config import Settings
from ancora.locations import ui_script
from ancora.store import open_raw_store
from ancora.training.run import TrainingRequest, train_and_register
from ancora.ui import views
from ancora.ui.users import Role, UserStore
from ancora_ui.widgets import USER_KEY, SignedIn
from tests.support.simulator import free_port
from tests.support.training_data import read_csv_rows, store_rows

pytestmark = pytest.mark.integration


def test_registry_runs_and_candidates_read_over_rest(
    training_settings: Settings, covertype_csv: Path
) -> None:
    settings = training_settings.model_copy(update={"train_min_class_rows": 3})
    rows = read_csv_rows(covertype_csv, limit=900)
    store_rows(open_raw_store(settings.data_db_url), rows[:400])
    first = train_and_register(settings, TrainingRequest.from_settings(settings, ["logistic_regression"], 2))
    store_rows(open_raw_store(settings.data_db_url), rows[400:], first_batch=2)
    second = train_and_register(settings, TrainingRequest.from_settings(settings, ["logistic_regression"], 1))

    public = "http://mlflow.example:5000"
    with MlflowRestClient.from_settings(settings) as client:
        versions = client.model_versions(settings.registered_model_name)
        assert [v.version for v in versions] == ["2", "1"]
        by_version = {v.version: v for v in versions}
        champion = first.version if second.decision == "kept" else second.version
        assert "challenger" in by_version["2"].aliases
        assert "champion" in by_version[champion].aliases
        assert by_version["1"].tags["gate_decision"] == "first"
        assert by_version["2"].training_run_id == second.run_id

        table = views.versions_frame(versions, public)
        assert list(table["gate decision"]) == [second.decision, "first"]
        assert table["macro F1 (eval set)"].iloc[1] == pytest.approx(first.challenger["macro_f1"], abs=1e-5)

        training_run = client.get_run(second.run_id)
        gate = views.gate_view(training_run)
        assert (gate.decision, gate.reason) == (second.decision, second.reason)
        assert gate.challenger_macro_f1 == pytest.approx(second.challenger["macro_f1"], abs=1e-6)
        assert set(views.family_evaluation_frame(training_run)["family"]) == {"logistic_regression"}

        candidates = views.candidates_frame(client.child_runs(training_run), public)
        assert len(candidates) == 1
        assert candidates["family"].iloc[0] == "logistic_regression"
        assert 0 < candidates["validation_macro_f1"].iloc[0] <= 1
        assert (
            candidates["MLflow run"]
            .iloc[0]
            .startswith(f"{public}/#/experiments/{training_run.experiment_id}/runs/")
        )

        first_run = client.get_run(first.run_id)
        assert len(client.child_runs(first_run)) == 2


def test_unknown_model_has_no_versions_and_a_down_server_says_so(training_settings: Settings) -> None:
    with MlflowRestClient.from_settings(training_settings) as client:
        assert client.model_versions("no-such-model") == []
    with (
        MlflowRestClient(f"http://127.0.0.1:{free_port()}", timeout=2) as down,
        pytest.raises(MlflowError, match="not reachable") as raised,
    ):
        down.model_versions("covertype")
    assert raised.value.unreachable


def test_models_page_on_a_real_registry(training_settings: Settings, covertype_csv: Path) -> None:
    settings = training_settings.model_copy(update={"train_min_class_rows": 3})
    store_rows(open_raw_store(settings.data_db_url), read_csv_rows(covertype_csv, limit=400))
    outcome = train_and_register(
        settings, TrainingRequest.from_settings(settings, ["logistic_regression"], 2)
    )

    at = AppTest.from_file(str(ui_script()), default_timeout=60)
    at.session_state[USER_KEY] = SignedIn("ada", Role.ADMIN)
    UserStore(settings.ui_users_file).add("ada", Role.ADMIN, "integration-password")
    at.run()
    at.switch_page("app_pages/models.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert ("@champion", "v1") in [(m.label, m.value) for m in at.metric]
    assert f"Gate: **first**. {outcome.reason}" in [s.value for s in at.success]
    assert len(at.dataframe[-1].value) == 2, "both logistic_regression candidates side by side"
