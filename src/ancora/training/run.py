"""One training run end to end: data, evaluation set, search, tracking, registration, gate.

`ancora train`, the `covertype_train` DAG, a Slurm job and a container all call `train_and_register`,
so every place runs the same code and prints the same one-line result.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.model_selection import train_test_split

from ancora.config import Settings
from ancora.locations import code_version
from ancora.store import open_raw_store
from ancora.training.compile import compile_and_log, report_summary
from ancora.training.data import RowSet, TrainingDataError
from ancora.training.evalset import EvaluationSet
from ancora.training.gate import GateDecision, current_champion_version, decide, promote_if_better
from ancora.training.inputs import prepare_inputs
from ancora.training.model_io import load_pipeline
from ancora.training.pipelines import for_serving, resolve_families
from ancora.training.search import (
    FittedCandidate,
    Scores,
    best_of,
    ranking_key,
    run_search,
    sample_candidates,
    score,
)
from ancora.training.tracking import (
    as_dataset,
    check_tracking_server,
    confusion_matrix_figure,
    input_example,
    log_pipeline,
)

log = logging.getLogger(__name__)

REGISTRATION_WAIT_SECONDS = 300


@dataclass
class TrainingRequest:
    """What a caller may choose per run; everything else comes from the settings."""

    families: list[str]
    search_budget: int

    @classmethod
    def from_settings(
        cls, settings: Settings, families: list[str] | None = None, search_budget: int | None = None
    ) -> TrainingRequest:
        return cls(
            families=resolve_families(families or settings.train_families),
            search_budget=search_budget or settings.train_search_budget,
        )


@dataclass
class FamilyResult:
    family: str
    params: dict[str, Any]
    run_id: str
    validation: dict[str, float]
    evaluation: dict[str, float]


@dataclass
class TrainingOutcome:
    registered_model: str
    version: str
    model_uri: str
    run_id: str
    best_family: str
    best_params: dict[str, Any]
    decision: str
    reason: str
    margin: float
    challenger: dict[str, float]
    champion: dict[str, float] | None
    champion_version: str | None
    eval_set_version: int
    eval_set_reason: str
    stored_rows: int
    """Rows of the group in the store, one per (batch, content): repeated contents count again."""
    distinct_contents: int
    training_rows: int
    """Distinct contents training read (evaluation contents and left-out classes excluded)."""
    evaluation_rows: int
    """Distinct contents of the evaluation set."""
    left_out_classes: dict[int, int]
    batches: list[int]
    code_version: str
    families: dict[str, FamilyResult] = field(default_factory=dict)
    compiled: dict[str, Any] = field(default_factory=dict)
    """Which engine serves the version, its parity figures, compile time and crossover."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """The one JSON line: version, scores and decision; per-family detail stays in MLflow."""
        data = self.as_dict()
        data.pop("families")
        return data


def _nested_run_name(candidate: FittedCandidate) -> str:
    return f"{candidate.spec.family}-{candidate.spec.index:02d}"


def _validation_split(rows: RowSet, fraction: float, seed: int) -> tuple[Any, Any, Any, Any]:
    counts = rows.labels.value_counts()
    if (counts < 2).any():
        thin = ", ".join(f"class {int(c)}: {int(n)}" for c, n in counts[counts < 2].items())
        raise TrainingDataError(f"too few training rows to stratify the validation split ({thin})")
    train, validation = train_test_split(
        rows.frame, test_size=fraction, stratify=rows.labels, random_state=seed
    )
    train_rows = RowSet(train, rows.query, rows.digest)
    validation_rows = RowSet(validation, rows.query, rows.digest)
    return train_rows.features, train_rows.labels, validation_rows.features, validation_rows.labels


def _log_candidate(
    candidate: FittedCandidate,
    validation_labels: Any,
    training_dataset: Any,
    common_tags: dict[str, str],
    example: Any,
) -> tuple[str, str]:
    """One nested run per candidate: params, metrics, confusion matrix, dataset and the model itself."""
    with mlflow.start_run(run_name=_nested_run_name(candidate), nested=True) as run:
        mlflow.set_tags({**common_tags, "ancora.family": candidate.spec.family, "ancora.role": "candidate"})
        mlflow.log_params({"family": candidate.spec.family, **candidate.spec.params})
        mlflow.log_input(training_dataset, context="training")
        mlflow.log_metrics(
            {**candidate.validation.as_metrics("validation_"), "fit_time_seconds": candidate.fit_seconds}
        )
        mlflow.log_figure(
            confusion_matrix_figure(
                validation_labels,
                candidate.validation_predictions,
                f"{_nested_run_name(candidate)} on the validation rows",
            ),
            "confusion_matrix.png",
        )
        info = log_pipeline(for_serving(candidate.pipeline), example, candidate.spec.params)
        return str(run.info.run_id), str(info.model_uri)


def _score_champion(
    client: MlflowClient, model_name: str, evaluation: RowSet
) -> tuple[str | None, Scores | None]:
    version = current_champion_version(client, model_name)
    if version is None:
        return None, None
    champion = load_pipeline(f"models:/{model_name}/{version}")
    scores, _ = score(champion, evaluation.features, evaluation.labels)
    return version, scores


def _description(outcome_family: str, gate: GateDecision, eval_set: EvaluationSet, run_id: str) -> str:
    return (
        f"Best candidate ({outcome_family}) of training run {run_id}, scored on frozen evaluation set "
        f"v{eval_set.version} ({eval_set.row_count} distinct contents, digest {eval_set.digest}). "
        f"Gate: {gate.decision}: {gate.reason}."
    )


def train_and_register(settings: Settings, request: TrainingRequest) -> TrainingOutcome:
    """Train every candidate, register the best as a new version and apply the promotion gate.

    Raises TrainingDataError when the data cannot support training (nothing is registered; more data
    is needed, not a retry) and TrackingUnavailable or MlflowException when MLflow fails (retry).
    """
    tracking_uri = settings.mlflow_tracking_uri
    check_tracking_server(tracking_uri)
    store = open_raw_store(settings.data_db_url)
    engine = store.engine
    group = settings.group_number

    inputs = prepare_inputs(
        engine,
        group,
        min_rows=settings.train_min_rows,
        min_class_rows=settings.train_min_class_rows,
        eval_fraction=settings.eval_fraction,
        seed=settings.train_seed,
    )
    eval_set, training, evaluation = inputs.choice.evaluation_set, inputs.training, inputs.evaluation
    train_x, train_y, validation_x, validation_y = _validation_split(
        training, settings.train_validation_fraction, settings.train_seed
    )

    version_of_code = code_version(settings.code_version)
    specs = sample_candidates(request.families, request.search_budget, settings.train_seed)
    common_tags = {
        "ancora.group": str(group),
        "ancora.batches": ",".join(str(b) for b in training.batches),
        "ancora.rows": str(len(training)),
        "ancora.code_version": version_of_code,
        "ancora.eval_set_version": str(eval_set.version),
        "ancora.data_digest": training.digest,
        "ancora.trained_through_row_id": str(inputs.contents.max_row_id),
    }
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(settings.mlflow_experiment)
    client = MlflowClient(tracking_uri=tracking_uri)
    model_name = settings.registered_model_name
    store_url = settings.data_db_url
    training_dataset = as_dataset(training, store_url, f"covertype-group{group}-training")
    evaluation_dataset = as_dataset(evaluation, store_url, f"covertype-group{group}-eval-v{eval_set.version}")
    example = input_example(train_x)

    run_name = f"train-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    with mlflow.start_run(run_name=run_name) as parent:
        parent_id = str(parent.info.run_id)
        mlflow.set_tags(
            {**common_tags, "ancora.role": "training", "ancora.families": ",".join(request.families)}
        )
        mlflow.log_params(
            {
                "families": ",".join(request.families),
                "search_budget": request.search_budget,
                "candidates": len(specs),
                "seed": settings.train_seed,
                "validation_fraction": settings.train_validation_fraction,
                "eval_fraction": settings.eval_fraction,
                "eval_set_version": eval_set.version,
                "promotion_margin": settings.promotion_margin,
                "n_jobs": settings.train_n_jobs,
            }
        )
        mlflow.log_input(training_dataset, context="training")
        mlflow.log_input(evaluation_dataset, context="evaluation")
        mlflow.log_metrics(
            {
                "stored_rows": inputs.stored_rows,
                "distinct_contents": len(inputs.contents),
                "training_rows": len(training),
                "evaluation_rows": len(evaluation),
            }
        )
        if inputs.left_out_classes:
            mlflow.set_tag(
                "ancora.left_out_classes", ",".join(str(label) for label in inputs.left_out_classes)
            )

        best_per_family: dict[str, FittedCandidate] = {}
        logged: dict[int, tuple[str, str]] = {}
        for candidate in run_search(
            specs, settings.train_seed, settings.train_n_jobs, train_x, train_y, validation_x, validation_y
        ):
            logged[candidate.spec.index] = _log_candidate(
                candidate, validation_y, training_dataset, common_tags, example
            )
            log.info(
                "candidate %s: validation macro F1 %.4f in %.1f s",
                _nested_run_name(candidate),
                candidate.validation.macro_f1,
                candidate.fit_seconds,
            )
            family = candidate.spec.family
            if family not in best_per_family or ranking_key(candidate) < ranking_key(best_per_family[family]):
                best_per_family[family] = candidate

        families: dict[str, FamilyResult] = {}
        for family, candidate in best_per_family.items():
            evaluated, _ = score(candidate.pipeline, evaluation.features, evaluation.labels)
            families[family] = FamilyResult(
                family=family,
                params=candidate.spec.params,
                run_id=logged[candidate.spec.index][0],
                validation=candidate.validation.summary(),
                evaluation=evaluated.summary(),
            )
            mlflow.log_metrics({f"eval_{family}_{k}": v for k, v in evaluated.as_metrics("").items()})

        best = best_of(best_per_family)
        best_run_id, model_uri = logged[best.spec.index]
        reloaded = load_pipeline(model_uri)
        compiled = compile_and_log(reloaded, model_uri, evaluation.features, settings)
        challenger, challenger_predictions = score(reloaded, evaluation.features, evaluation.labels)
        champion_version, champion = _score_champion(client, model_name, evaluation)
        gate = decide(
            challenger.macro_f1,
            champion.macro_f1 if champion else None,
            settings.promotion_margin,
            champion_version,
            inputs.choice.note,
        )
        mlflow.log_metrics(challenger.as_metrics("challenger_eval_"))
        if champion is not None:
            mlflow.log_metrics(champion.as_metrics("champion_eval_"))
        mlflow.log_figure(
            confusion_matrix_figure(
                evaluation.labels, challenger_predictions, f"challenger on evaluation set v{eval_set.version}"
            ),
            "challenger_confusion_matrix.png",
        )
        mlflow.log_dict(gate.as_dict(), "gate.json")
        mlflow.set_tags({"ancora.gate.decision": gate.decision, "ancora.gate.reason": gate.reason})

        version = _register(
            client,
            model_name,
            model_uri,
            best,
            best_run_id,
            parent_id,
            gate,
            eval_set,
            request,
            compiled.tags(),
        )
        promote_if_better(client, model_name, version, gate)
        mlflow.set_tags({"ancora.registered_version": version, "ancora.best_family": best.spec.family})

    outcome = TrainingOutcome(
        registered_model=model_name,
        version=version,
        model_uri=f"models:/{model_name}/{version}",
        run_id=parent_id,
        best_family=best.spec.family,
        best_params=best.spec.params,
        decision=gate.decision,
        reason=gate.reason,
        margin=settings.promotion_margin,
        challenger=challenger.summary(),
        champion=champion.summary() if champion else None,
        champion_version=version if gate.promote else champion_version,
        eval_set_version=eval_set.version,
        eval_set_reason=eval_set.reason,
        stored_rows=inputs.stored_rows,
        distinct_contents=len(inputs.contents),
        training_rows=len(training),
        evaluation_rows=len(evaluation),
        left_out_classes=inputs.left_out_classes,
        batches=training.batches,
        code_version=version_of_code,
        families=families,
        compiled=dict(report_summary(compiled.report)),
    )
    log.info("registered %s v%s: %s", model_name, version, gate.reason)
    return outcome


def _register(
    client: MlflowClient,
    model_name: str,
    model_uri: str,
    best: FittedCandidate,
    best_run_id: str,
    parent_id: str,
    gate: GateDecision,
    eval_set: EvaluationSet,
    request: TrainingRequest,
    compile_tags: dict[str, str],
) -> str:
    """A new version of the registered model, created only after its artifacts loaded back and scored."""
    try:
        client.create_registered_model(model_name)
    except MlflowException as problem:
        if problem.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    tags = {
        "run_id": parent_id,
        "candidate_run_id": best_run_id,
        "family": best.spec.family,
        "families": ",".join(request.families),
        "eval_set_version": str(eval_set.version),
        "eval_set_digest": eval_set.digest,
        "macro_f1": f"{gate.challenger_macro_f1:.6f}",
        "champion_macro_f1": "" if gate.champion_macro_f1 is None else f"{gate.champion_macro_f1:.6f}",
        "gate_decision": gate.decision,
        **compile_tags,
    }
    model_version = client.create_model_version(
        name=model_name,
        source=model_uri,
        run_id=best_run_id,
        tags=tags,
        description=_description(best.spec.family, gate, eval_set, parent_id),
        await_creation_for=REGISTRATION_WAIT_SECONDS,
        model_id=model_uri.removeprefix("models:/"),
    )
    return str(model_version.version)
