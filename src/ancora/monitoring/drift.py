"""Drift: how far a collected batch or a served window moved from the champion's training data.

Each feature is compared with the same statistics and default thresholds Evidently's DataDriftPreset
uses on samples over 1,000 rows: the Wasserstein distance normed by the reference's standard
deviation for numeric features, the Jensen-Shannon distance for categorical ones. The class mix
(the champion's predicted classes against the training labels) is compared with Jensen-Shannon too.
scipy computes them: Evidently itself does not import with pandas 3 (docs/monitoring.md says more).
"""

from __future__ import annotations

import html
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from ancora.monitoring.store import DriftReport, FeatureDrift
from ancora.schema import CATEGORICAL_FEATURES, FEATURE_NAMES, NUMERIC_FEATURES

NUMERIC_METHOD = "wasserstein_normed"
CATEGORICAL_METHOD = "jensenshannon"


@dataclass(frozen=True)
class Thresholds:
    numeric: float = 0.1
    categorical: float = 0.1
    share: float = 0.5

    @classmethod
    def from_settings(cls, settings: Any) -> Thresholds:
        return cls(
            settings.drift_numeric_threshold,
            settings.drift_categorical_threshold,
            settings.drift_share_threshold,
        )


@dataclass(frozen=True)
class Reference:
    """The champion's training rows (features and labels) and which version they stand for."""

    version: str
    run_id: str | None
    features: pd.DataFrame
    labels: pd.Series


def numeric_drift(reference: pd.Series, current: pd.Series) -> float:
    ref = reference.to_numpy(dtype=float)
    cur = current.to_numpy(dtype=float)
    spread = float(np.std(ref))
    distance = float(wasserstein_distance(ref, cur))
    if spread == 0.0:
        return 0.0 if distance == 0.0 else 1.0
    return distance / spread


def shares(values: pd.Series, categories: list[Any]) -> np.ndarray[Any, Any]:
    counts = values.value_counts()
    return np.asarray([float(counts.get(category, 0)) for category in categories]) / max(len(values), 1)


def categorical_drift(reference: pd.Series, current: pd.Series) -> float:
    categories = sorted(set(reference.astype(str)) | set(current.astype(str)))
    distance = jensenshannon(
        shares(reference.astype(str), categories), shares(current.astype(str), categories), base=2
    )
    return float(0.0 if np.isnan(distance) else distance)


def class_mix(labels: pd.Series) -> dict[str, float]:
    counts = labels.astype(int).value_counts(normalize=True).sort_index()
    return {str(label): round(float(share), 6) for label, share in counts.items()}


def compare(
    reference: Reference,
    current: pd.DataFrame,
    predicted: pd.Series,
    thresholds: Thresholds,
    *,
    kind: str,
    subject: str,
    window: tuple[datetime, datetime] | None = None,
) -> DriftReport:
    """Every feature and the class mix of ``current`` against the reference; nothing is stored here."""
    features: list[FeatureDrift] = []
    for name in FEATURE_NAMES:
        if name in NUMERIC_FEATURES:
            score = numeric_drift(reference.features[name], current[name])
            features.append(
                FeatureDrift(name, NUMERIC_METHOD, score, thresholds.numeric, score > thresholds.numeric)
            )
        elif name in CATEGORICAL_FEATURES:
            score = categorical_drift(reference.features[name], current[name])
            features.append(
                FeatureDrift(
                    name, CATEGORICAL_METHOD, score, thresholds.categorical, score > thresholds.categorical
                )
            )
    mix_score = categorical_drift(reference.labels.astype(int), predicted.astype(int))
    share = sum(feature.drifted for feature in features) / len(features)
    mix_drifted = mix_score > thresholds.categorical
    now = datetime.now(UTC)
    return DriftReport(
        id=f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}",
        kind=kind,
        subject=subject,
        window_start=window[0] if window else None,
        window_end=window[1] if window else None,
        created_at=now,
        reference_version=reference.version,
        reference_run_id=reference.run_id,
        reference_rows=len(reference.features),
        current_rows=len(current),
        features=tuple(features),
        class_mix={"reference": class_mix(reference.labels), "current": class_mix(predicted)},
        class_mix_score=mix_score,
        class_mix_drifted=mix_drifted,
        share_drifted=share,
        breached=share >= thresholds.share or mix_drifted,
    )


def report_dict(report: DriftReport) -> dict[str, Any]:
    return {
        "id": report.id,
        "kind": report.kind,
        "subject": report.subject,
        "window": [str(report.window_start), str(report.window_end)] if report.window_start else None,
        "created_at": report.created_at.isoformat(),
        "reference": {
            "version": report.reference_version,
            "run_id": report.reference_run_id,
            "rows": report.reference_rows,
        },
        "current_rows": report.current_rows,
        "share_drifted": report.share_drifted,
        "breached": report.breached,
        "class_mix": {
            **report.class_mix,
            "score": report.class_mix_score,
            "drifted": report.class_mix_drifted,
        },
        "features": [feature.__dict__ for feature in report.features],
    }


def report_html(report: DriftReport) -> str:
    """A self-contained page for the MLflow artifact view: one table, no script."""
    rows = "".join(
        f"<tr class='{'drift' if f.drifted else ''}'><td>{html.escape(f.feature)}</td><td>{f.method}</td>"
        f"<td>{f.score:.4f}</td><td>{f.threshold:g}</td><td>{'yes' if f.drifted else 'no'}</td></tr>"
        for f in report.features
    )
    mix = _mix_rows(report.class_mix)
    verdict = "BREACHED" if report.breached else "within thresholds"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Drift report</title><style>"
        "body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;border-bottom:1px solid #ddd}"
        ".drift{background:#fde2e2}</style></head><body>"
        f"<h1>Drift: {html.escape(report.kind)} {html.escape(report.subject)}</h1>"
        f"<p>Against champion v{html.escape(report.reference_version)}'s training data "
        f"({report.reference_rows} rows); {report.current_rows} current rows. "
        f"{report.share_drifted:.0%} of the features drifted: <b>{verdict}</b>.</p>"
        "<table><tr><th>feature</th><th>method</th><th>score</th><th>threshold</th><th>drifted</th></tr>"
        f"{rows}</table><h2>Class mix (Jensen-Shannon {report.class_mix_score:.4f})</h2>"
        f"<table><tr><th>class</th><th>training labels</th><th>predicted</th></tr>{mix}</table></body></html>"
    )


def _mix_rows(mix: Mapping[str, Mapping[str, float]]) -> str:
    reference, current = mix.get("reference", {}), mix.get("current", {})
    labels = sorted(set(reference) | set(current), key=int)
    return "".join(
        f"<tr><td>{label}</td><td>{reference.get(label, 0.0):.3f}</td>"
        f"<td>{current.get(label, 0.0):.3f}</td></tr>"
        for label in labels
    )


def report_json(report: DriftReport) -> str:
    return json.dumps(report_dict(report), indent=2, sort_keys=True)
