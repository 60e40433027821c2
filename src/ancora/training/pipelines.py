"""Candidate pipelines: the same preprocessing for every family, so a logged model takes raw rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ancora.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES

SKOPS_TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)
"""Types skops must be told to trust when loading these pipelines; a test checks every family against it."""


@dataclass(frozen=True)
class Family:
    """A model family: how to build its estimator and the bounded grid its search samples from."""

    name: str
    build: Callable[[Mapping[str, Any], int], Any]
    grid: Mapping[str, list[Any]]


def preprocessor() -> ColumnTransformer:
    """Scaled numbers and one-hot categories; dense output because HistGradientBoosting refuses sparse."""
    return ColumnTransformer(
        [
            ("numeric", StandardScaler(), list(NUMERIC_FEATURES)),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                list(CATEGORICAL_FEATURES),
            ),
        ],
        verbose_feature_names_out=False,
    )


def _logistic_regression(params: Mapping[str, Any], seed: int) -> LogisticRegression:
    return LogisticRegression(max_iter=500, random_state=seed, **params)


def _random_forest(params: Mapping[str, Any], seed: int) -> RandomForestClassifier:
    return RandomForestClassifier(n_jobs=1, random_state=seed, **params)


def _hist_gradient_boosting(params: Mapping[str, Any], seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        early_stopping=True, validation_fraction=0.1, n_iter_no_change=10, random_state=seed, **params
    )


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "logistic_regression",
            _logistic_regression,
            {"C": [0.1, 0.3, 1.0, 3.0, 10.0, 30.0], "class_weight": [None, "balanced"]},
        ),
        Family(
            "random_forest",
            _random_forest,
            # Depth and leaf size are bounded: an unbounded forest on 16k rows is 100 MB of artifacts.
            {
                "n_estimators": [60, 100],
                "max_depth": [16, 20, 24],
                "min_samples_leaf": [1, 2],
                "max_features": ["sqrt", 0.3],
            },
        ),
        Family(
            "hist_gradient_boosting",
            _hist_gradient_boosting,
            # l2_regularization > 0 on purpose: without it the rare classes make the fit oscillate.
            {
                "learning_rate": [0.05, 0.1],
                "max_iter": [100, 150],
                "max_leaf_nodes": [15, 31],
                "l2_regularization": [1.0, 3.0],
            },
        ),
    )
}


def resolve_families(names: list[str] | str) -> list[str]:
    """Family names from a list or a comma-separated string, checked against FAMILIES, order kept."""
    if isinstance(names, str):
        names = [n for n in names.split(",")]
    cleaned = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    unknown = [n for n in cleaned if n not in FAMILIES]
    if unknown or not cleaned:
        raise ValueError(f"unknown model families {unknown or names}; choose from {', '.join(FAMILIES)}")
    return cleaned


def build_pipeline(family: str, params: Mapping[str, Any], seed: int) -> Pipeline:
    return Pipeline([("preprocess", preprocessor()), ("model", FAMILIES[family].build(params, seed))])


def for_serving(pipeline: Pipeline) -> Pipeline:
    """Single-threaded prediction: a forest with n_jobs>1 spends longer starting threads than predicting."""
    estimator = pipeline.named_steps["model"]
    if "n_jobs" in estimator.get_params():
        estimator.set_params(n_jobs=1)
    return pipeline
