"""Bounded hyper-parameter search: a fixed number of seeded samples from each family's grid.

Candidates are fitted in parallel processes, each single-threaded: on two shared cores, OpenMP and
BLAS threads inside one fit spin-wait against each other and run several times slower than two
independent single-threaded fits.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed  # type: ignore[import-untyped]
from sklearn.metrics import accuracy_score, f1_score, log_loss, recall_score
from sklearn.model_selection import ParameterSampler
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from ancora.training.pipelines import FAMILIES, build_pipeline


@dataclass(frozen=True)
class CandidateSpec:
    index: int
    family: str
    params: dict[str, Any]


@dataclass
class Scores:
    accuracy: float
    macro_f1: float
    log_loss: float
    recall_per_class: dict[int, float] = field(default_factory=dict)

    def as_metrics(self, prefix: str) -> dict[str, float]:
        metrics = {
            f"{prefix}accuracy": self.accuracy,
            f"{prefix}macro_f1": self.macro_f1,
            f"{prefix}log_loss": self.log_loss,
        }
        metrics.update(
            {f"{prefix}recall_class_{label}": value for label, value in self.recall_per_class.items()}
        )
        return metrics

    def summary(self) -> dict[str, float]:
        return {"accuracy": round(self.accuracy, 6), "macro_f1": round(self.macro_f1, 6)}


@dataclass
class FittedCandidate:
    spec: CandidateSpec
    pipeline: Pipeline
    fit_seconds: float
    validation: Scores
    validation_predictions: np.ndarray[Any, Any]


def sample_candidates(families: list[str], budget: int, seed: int) -> list[CandidateSpec]:
    """`budget` distinct configurations per family (fewer when the grid is smaller), reproducible by seed."""
    specs: list[CandidateSpec] = []
    for family in families:
        grid = FAMILIES[family].grid
        size = int(np.prod([len(values) for values in grid.values()]))
        sampler = ParameterSampler(grid, n_iter=min(budget, size), random_state=seed)
        for params in sampler:
            specs.append(CandidateSpec(len(specs), family, dict(sorted(params.items()))))
    return specs


def score(
    pipeline: Pipeline, features: pd.DataFrame, labels: pd.Series
) -> tuple[Scores, np.ndarray[Any, Any]]:
    """Accuracy, macro F1, log loss and recall per class; classes absent from `labels` get no recall."""
    classes = pipeline.classes_
    probabilities = pipeline.predict_proba(features)
    predictions = classes[np.argmax(probabilities, axis=1)]
    present = sorted(int(c) for c in np.unique(labels))
    recalls = recall_score(labels, predictions, labels=present, average=None, zero_division=0)
    # A model trained before a class appeared gives it probability 0: its log loss is large, not an error.
    every_class = np.union1d(classes, present)
    full = np.zeros((len(probabilities), len(every_class)))
    full[:, np.searchsorted(every_class, classes)] = probabilities
    return (
        Scores(
            accuracy=float(accuracy_score(labels, predictions)),
            macro_f1=float(f1_score(labels, predictions, average="macro", zero_division=0)),
            log_loss=float(log_loss(labels, full, labels=every_class)),
            recall_per_class={label: float(r) for label, r in zip(present, recalls, strict=True)},
        ),
        predictions,
    )


def fit_candidate(
    spec: CandidateSpec,
    seed: int,
    train_features: pd.DataFrame,
    train_labels: pd.Series,
    validation_features: pd.DataFrame,
    validation_labels: pd.Series,
) -> FittedCandidate:
    """Fit one candidate single-threaded and score it on the validation rows."""
    with threadpool_limits(limits=1):
        pipeline = build_pipeline(spec.family, spec.params, seed)
        started = time.perf_counter()
        pipeline.fit(train_features, train_labels)
        fit_seconds = time.perf_counter() - started
        validation, predictions = score(pipeline, validation_features, validation_labels)
    return FittedCandidate(spec, pipeline, fit_seconds, validation, predictions)


def run_search(
    specs: list[CandidateSpec],
    seed: int,
    n_jobs: int,
    train_features: pd.DataFrame,
    train_labels: pd.Series,
    validation_features: pd.DataFrame,
    validation_labels: pd.Series,
) -> Iterator[FittedCandidate]:
    """Fitted candidates as they finish, so the caller can log each and keep only the ones it needs."""
    jobs = (
        delayed(fit_candidate)(
            spec, seed, train_features, train_labels, validation_features, validation_labels
        )
        for spec in specs
    )
    yield from Parallel(n_jobs=min(n_jobs, len(specs)), return_as="generator_unordered")(jobs)


def ranking_key(candidate: FittedCandidate) -> tuple[float, float, int]:
    """Best macro F1 on validation, then lowest log loss, then the earliest candidate: no ties left."""
    return (-candidate.validation.macro_f1, candidate.validation.log_loss, candidate.spec.index)


def best_of(candidates: Mapping[str, FittedCandidate]) -> FittedCandidate:
    return min(candidates.values(), key=ranking_key)
