"""Training through a real MLflow server (SQLite backend store, proxied artifacts) on covertype rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from ancora.config import Settings, get_settings
from ancora.schema import FEATURE_NAMES, LABEL_NAME
from ancora.serving.registry import ModelRegistry
from ancora.store import open_raw_store
from ancora.training.data import TrainingDataError, with_raw_dtypes
from ancora.training.evalset import latest_evaluation_set
from ancora.training.model_io import load_pipeline
from ancora.training.run import TrainingOutcome, TrainingRequest, train_and_register
from ancora.training.tracking import TrackingUnavailable
from tests.support.legacy_store import legacy_deployment
from tests.support.simulator import free_port
from tests.support.training_data import read_csv_rows, store_rows


@pytest.fixture(scope="module")
def csv_rows(covertype_csv: Path) -> list[list[str]]:
    return read_csv_rows(covertype_csv, limit=4000)


def fill(settings: Settings, rows: list[list[str]], first_batch: int = 1, batches: int = 1) -> None:
    store_rows(open_raw_store(settings.data_db_url), rows, first_batch=first_batch, batches=batches)


def train(settings: Settings, families: list[str], budget: int = 1) -> TrainingOutcome:
    return train_and_register(settings, TrainingRequest.from_settings(settings, families, budget))


def raw_frame(rows: list[list[str]]) -> pd.DataFrame:
    """Rows exactly as the data API delivers them, typed by the contract, label dropped."""
    frame = with_raw_dtypes(pd.DataFrame(rows, columns=[*FEATURE_NAMES, LABEL_NAME]))
    return frame.loc[:, list(FEATURE_NAMES)]


def aliases(client: MlflowClient, name: str) -> dict[str, str]:
    return dict(client.get_registered_model(name).aliases)


def test_a_run_is_tracked_registered_and_served_by_alias(
    training_settings: Settings, csv_rows: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = training_settings
    fill(settings, csv_rows[:1500], batches=3)
    outcome = train(settings, ["logistic_regression", "random_forest", "hist_gradient_boosting"])

    name = settings.registered_model_name
    client = MlflowClient(settings.mlflow_tracking_uri)
    assert (outcome.version, outcome.decision, outcome.champion) == ("1", "first", None)
    assert aliases(client, name) == {"champion": "1", "challenger": "1"}
    assert set(outcome.families) == {"logistic_regression", "random_forest", "hist_gradient_boosting"}
    assert outcome.stored_rows == outcome.distinct_contents == 1500
    assert outcome.training_rows + outcome.evaluation_rows == 1500

    parent = client.get_run(outcome.run_id)
    assert parent.data.tags["ancora.batches"] == "1,2,3"
    assert parent.data.tags["ancora.rows"] == str(outcome.training_rows)
    assert parent.data.tags["ancora.code_version"] == "test"
    assert parent.data.tags["ancora.gate.decision"] == "first"
    assert parent.data.metrics["challenger_eval_macro_f1"] == pytest.approx(outcome.challenger["macro_f1"])
    contexts = {
        d.dataset.name: {t.value for t in d.tags if t.key == "mlflow.data.context"}
        for d in parent.inputs.dataset_inputs
    }
    assert contexts == {
        "covertype-group1-training": {"training"},
        "covertype-group1-eval-v1": {"evaluation"},
    }
    training_input = next(d.dataset for d in parent.inputs.dataset_inputs if "training" in d.dataset.name)
    source = json.loads(training_input.source)
    assert training_input.source_type == "ancora_raw_store"
    assert "FROM raw_rows" in source["query"] and "NOT IN" in source["query"]
    assert training_input.digest == parent.data.tags["ancora.data_digest"]

    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{outcome.run_id}'"
    )
    assert len(children) == 3
    for child in children:
        metrics = child.data.metrics
        assert {
            "validation_accuracy",
            "validation_macro_f1",
            "validation_log_loss",
            "fit_time_seconds",
        } <= set(metrics)
        assert any(key.startswith("validation_recall_class_") for key in metrics)
        assert child.data.params["family"] == child.data.tags["ancora.family"]
        assert child.data.tags["ancora.batches"] == "1,2,3"
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert "confusion_matrix.png" in artifacts
        assert child.inputs.dataset_inputs[0].dataset.digest == training_input.digest

    version = client.get_model_version(name, "1")
    assert version.tags["run_id"] == outcome.run_id
    assert version.tags["families"] == "logistic_regression,random_forest,hist_gradient_boosting"
    assert version.tags["eval_set_version"] == "1"
    assert float(version.tags["macro_f1"]) == pytest.approx(outcome.challenger["macro_f1"], abs=1e-6)
    assert "Gate: first" in version.description

    # The registered version was compiled, checked against scikit-learn on the frozen evaluation set
    # and carries the figures; the serving loader finds the artifact with the model.
    assert outcome.compiled["status"] == "compiled"
    assert version.tags["serving_engine"] == "onnxruntime"
    assert float(version.tags["parity_label_agreement"]) >= 0.999
    assert float(version.tags["parity_max_probability_diff"]) <= 1e-4
    assert int(version.tags["parity_rows"]) == outcome.evaluation_rows + 50
    assert float(version.tags["compile_seconds"]) > 0
    assert parent.data.metrics["compile_seconds"] == pytest.approx(
        float(version.tags["compile_seconds"]), abs=1e-3
    )
    assert parent.data.metrics["parity_label_agreement"] >= 0.999
    registry = ModelRegistry(settings)
    served = registry.load(registry.current_version())
    assert served.compiled is not None and served.compile_report.serves_compiled
    assert served.engine_for(1) == "onnxruntime"
    assert np.allclose(
        served.predict_proba(raw_frame(csv_rows[3000:3050])),
        load_pipeline(f"models:/{name}/1").predict_proba(raw_frame(csv_rows[3000:3050])),
        atol=1e-4,
    )

    info = mlflow.models.get_model_info(f"models:/{name}@champion")
    assert [spec.name for spec in info.signature.inputs.inputs] == list(FEATURE_NAMES)
    assert info.saved_input_example_info is not None
    assert info.flavors["sklearn"]["serialization_format"] == "skops"

    unseen = raw_frame(csv_rows[3000:3050])
    pipeline = load_pipeline(f"models:/{name}@champion")
    probabilities = pipeline.predict_proba(unseen)
    assert probabilities.shape == (50, len(pipeline.classes_))
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    estimator = pipeline.named_steps["model"]
    assert estimator.get_params().get("n_jobs", 1) == 1, "served single-threaded"

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert list(pyfunc.predict(unseen)) == list(pipeline.predict(unseen))


def test_the_gate_moves_champion_only_for_a_clear_improvement(
    training_settings: Settings, csv_rows: list[list[str]]
) -> None:
    settings = training_settings.model_copy(update={"train_min_class_rows": 3})
    name = settings.registered_model_name
    client = MlflowClient(settings.mlflow_tracking_uri)

    fill(settings, csv_rows[:300])
    first = train(settings, ["logistic_regression"])
    assert (first.version, first.decision) == ("1", "first")

    fill(settings, csv_rows[300:3000], first_batch=2, batches=3)
    better = train(settings, ["hist_gradient_boosting"])
    assert better.eval_set_version == 2, "new batches drew a new evaluation set version"
    assert better.decision == "promoted", better.reason
    assert better.champion is not None
    assert better.challenger["macro_f1"] > better.champion["macro_f1"] + settings.promotion_margin
    assert aliases(client, name) == {"champion": "2", "challenger": "2"}

    same = train(settings, ["hist_gradient_boosting"])
    assert same.decision == "kept", "an equal score is within the margin"
    assert same.challenger == same.champion
    assert aliases(client, name) == {"champion": "2", "challenger": "3"}

    worse = train(settings, ["logistic_regression"])
    assert worse.decision == "kept", worse.reason
    assert aliases(client, name) == {"champion": "2", "challenger": "4"}

    parent = client.get_run(worse.run_id)
    assert parent.data.tags["ancora.gate.decision"] == "kept"
    assert parent.data.metrics["champion_eval_macro_f1"] == pytest.approx(
        better.challenger["macro_f1"], abs=1e-6
    )
    description = client.get_model_version(name, "4").description
    assert "does not beat champion v2" in description
    assert client.get_model_version(name, "2").tags["gate_decision"] == "promoted"


def test_too_little_data_registers_nothing(training_settings: Settings, csv_rows: list[list[str]]) -> None:
    settings = training_settings
    fill(settings, csv_rows[:150])
    with pytest.raises(TrainingDataError, match="only 150 distinct validated rows"):
        train(settings, ["logistic_regression"])
    client = MlflowClient(settings.mlflow_tracking_uri)
    assert client.search_registered_models(filter_string=f"name = '{settings.registered_model_name}'") == []
    assert mlflow.get_experiment_by_name(settings.mlflow_experiment) is None


def test_mlflow_down_fails_before_any_work(training_settings: Settings, csv_rows: list[list[str]]) -> None:
    fill(training_settings, csv_rows[:300])
    down = training_settings.model_copy(update={"mlflow_tracking_uri": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(TrackingUnavailable, match="unreachable"):
        train(down, ["logistic_regression"])
    engine = open_raw_store(down.data_db_url).engine
    assert latest_evaluation_set(engine, 1) is None


def cli(settings: Settings, *args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANCORA_")}
    env.update(
        ANCORA_STATE_DIR=str(settings.state_dir),
        ANCORA_DATA_DB_URL=settings.data_db_url,
        ANCORA_MLFLOW_TRACKING_URI=settings.mlflow_tracking_uri,
        ANCORA_REGISTERED_MODEL_NAME=settings.registered_model_name,
        ANCORA_MLFLOW_EXPERIMENT=settings.mlflow_experiment,
        ANCORA_TRAIN_MIN_ROWS="200",
        ANCORA_TRAIN_N_JOBS="2",
    )
    env.update(overrides)
    return subprocess.run(
        [sys.executable, "-m", "ancora", "train", *args], env=env, capture_output=True, text=True, timeout=600
    )


def test_cli_prints_version_scores_and_decision_as_one_json_line(
    training_settings: Settings, csv_rows: list[list[str]]
) -> None:
    settings = training_settings
    fill(settings, csv_rows[:1500], batches=2)
    run = cli(settings, "--family", "random_forest", "--family", "logistic_regression", "--budget", "2")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1, run.stdout
    result = json.loads(lines[0])
    assert result["registered_model"] == settings.registered_model_name
    assert (result["version"], result["decision"], result["champion_version"]) == ("1", "first", "1")
    assert 0 < result["challenger"]["macro_f1"] <= 1
    assert result["best_family"] in ("random_forest", "logistic_regression")
    client = MlflowClient(settings.mlflow_tracking_uri)
    children = client.search_runs(
        [client.get_run(result["run_id"]).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result['run_id']}'",
    )
    assert len(children) == 4, "two families x budget 2, fitted by two worker processes"


def test_cli_exit_codes_say_whether_a_retry_can_help(
    training_settings: Settings, csv_rows: list[list[str]]
) -> None:
    fill(training_settings, csv_rows[:100])
    few = cli(training_settings)
    assert few.returncode == 2
    assert "only 100 distinct validated rows" in few.stderr and "nothing was registered" in few.stderr

    down = cli(training_settings, ANCORA_MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 3
    assert "unreachable" in down.stderr
    assert down.stdout == ""
    get_settings.cache_clear()


def test_the_first_run_after_migration_0003_says_the_gate_scored_on_a_replacement(
    training_settings: Settings, csv_rows: list[list[str]]
) -> None:
    """An existing deployment: its evaluation set holds row ids whose contents leaked into training."""
    settings = training_settings.model_copy(update={"train_min_class_rows": 3})
    legacy_deployment(settings.data_db_url, csv_rows[:700])
    fill(settings, csv_rows[700:900], first_batch=3)

    outcome = train(settings, ["logistic_regression"])

    assert outcome.eval_set_version == 2
    assert outcome.eval_set_reason.startswith("replaces v1, drawn by row id before migration 0003: 60 of")
    assert "scored on evaluation set v2, drawn by this run: replaces v1, drawn by row id" in outcome.reason
    client = MlflowClient(settings.mlflow_tracking_uri)
    version = client.get_model_version(settings.registered_model_name, outcome.version)
    assert "replaces v1, drawn by row id before migration 0003" in version.description
    parent = client.get_run(outcome.run_id)
    assert "replaces v1" in parent.data.tags["ancora.gate.reason"]
    assert parent.data.metrics["stored_rows"] == 1100 and parent.data.metrics["distinct_contents"] == 800

    again = train(settings, ["logistic_regression"])
    assert again.eval_set_version == 2 and "drawn by this run" not in again.reason
