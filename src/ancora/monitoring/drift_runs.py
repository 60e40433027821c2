"""Drift runs: load the champion's training data, compare a batch or a served window, store, publish.

Called by the drift DAGs (``covertype_drift_batch`` on the raw-data Asset, ``covertype_drift_served``
hourly) and by ``ancora drift``. No champion yet, or too few rows, is a reason to skip, not a failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from ancora.config import Settings
from ancora.monitoring.drift import Reference, Thresholds, compare, report_html, report_json
from ancora.monitoring.store import DriftReport, MonitoringStore, open_monitoring_store
from ancora.schema import FEATURE_NAMES, LABEL_NAME


class NothingToCompare(Exception):
    """No champion yet, or too few rows: the run ends skipped with this reason."""


@dataclass(frozen=True)
class Champion:
    version: str
    training_run_id: str | None
    trained_through_row_id: int | None
    model: object


def champion(settings: Settings) -> Champion:
    """The served version, its parent training run and the last raw row it was trained on."""
    from mlflow import MlflowClient

    from ancora.serving.registry import ChampionMissing, ModelRegistry, configure_mlflow_http

    configure_mlflow_http(settings)
    registry = ModelRegistry(settings)
    try:
        ref = registry.current_version()
    except ChampionMissing as missing:
        raise NothingToCompare(f"no champion yet ({missing}): nothing to compare with") from missing
    client = MlflowClient(settings.mlflow_tracking_uri)
    version = client.get_model_version(settings.registered_model_name, ref.version)
    run_id = version.tags.get("run_id") or None
    through: int | None = None
    if run_id:
        tag = client.get_run(run_id).data.tags.get("ancora.trained_through_row_id", "")
        through = int(tag) if tag.isdigit() else None
    return Champion(ref.version, run_id, through, registry.load(ref))


def reference_rows(settings: Settings, champ: Champion) -> Reference:
    from ancora.store import open_raw_store, validated_rows_query
    from ancora.training.data import read_rows

    store = open_raw_store(settings.data_db_url)
    try:
        rows = read_rows(
            store.engine,
            validated_rows_query(settings.group_number, through_row_id=champ.trained_through_row_id),
        )
    finally:
        store.engine.dispose()
    frame = rows.frame
    if len(frame) > settings.drift_reference_max_rows:
        frame = frame.sample(settings.drift_reference_max_rows, random_state=settings.train_seed)
    return Reference(champ.version, champ.training_run_id, frame[list(FEATURE_NAMES)], frame[LABEL_NAME])


def predicted_classes(champ: Champion, features: pd.DataFrame) -> pd.Series:
    model = champ.model
    probabilities = model.predict_proba(features.reset_index(drop=True))  # type: ignore[attr-defined]
    classes = pd.Series(model.classes)  # type: ignore[attr-defined]
    return classes.iloc[probabilities.argmax(axis=1)].reset_index(drop=True)


def batch_rows(settings: Settings, batch_number: int | None) -> tuple[int, pd.DataFrame]:
    """The validated rows of one collected batch (default: the newest), with the served dtypes."""
    from ancora.store import open_raw_store, validated_rows_query
    from ancora.store.tables import raw_rows
    from ancora.training.data import read_rows

    store = open_raw_store(settings.data_db_url)
    try:
        if batch_number is None:
            with store.engine.connect() as connection:
                newest = connection.execute(
                    sa.select(sa.func.max(raw_rows.c.batch_number)).where(
                        raw_rows.c.group_number == settings.group_number
                    )
                ).scalar()
            if newest is None:
                raise NothingToCompare("no batch collected yet")
            batch_number = int(newest)
        query = validated_rows_query(settings.group_number).where(raw_rows.c.batch_number == batch_number)
        rows = read_rows(store.engine, query)
    finally:
        store.engine.dispose()
    return batch_number, rows.frame[list(FEATURE_NAMES)]


def batch_drift(settings: Settings, batch_number: int | None = None) -> DriftReport:
    number, current = batch_rows(settings, batch_number)
    if len(current) < settings.drift_min_rows:
        raise NothingToCompare(
            f"batch {number} holds {len(current)} validated rows, fewer than ANCORA_DRIFT_MIN_ROWS="
            f"{settings.drift_min_rows}"
        )
    champ = champion(settings)
    report = compare(
        reference_rows(settings, champ),
        current,
        predicted_classes(champ, current),
        Thresholds.from_settings(settings),
        kind="batch",
        subject=f"batch {number}",
    )
    return publish(settings, report)


def served_drift(settings: Settings, end: datetime, hours: float | None = None) -> DriftReport:
    """The predictions logged in the window ``[end - hours, end)`` against the champion's training data."""
    start = end - timedelta(hours=hours or settings.drift_window_hours)
    store = open_monitoring_store(settings.dispatch_events_db_url)
    served = store.predictions(start, end)
    if len(served) < settings.drift_min_rows:
        raise NothingToCompare(
            f"{len(served)} predictions logged from {start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC, fewer than "
            f"ANCORA_DRIFT_MIN_ROWS={settings.drift_min_rows}"
        )
    champ = champion(settings)
    report = compare(
        reference_rows(settings, champ),
        served[list(FEATURE_NAMES)],
        served["predicted_class"].astype(int),
        Thresholds.from_settings(settings),
        kind="served",
        subject=f"{start:%Y-%m-%dT%H:%M}Z",
        window=(start, end),
    )
    return publish(settings, report, store)


def publish(settings: Settings, report: DriftReport, store: MonitoringStore | None = None) -> DriftReport:
    """Store the report, and put it (HTML and JSON) on the champion's training run in MLflow."""
    store = store or open_monitoring_store(settings.dispatch_events_db_url)
    store.save_drift(report)
    if report.reference_run_id:
        from mlflow import MlflowClient

        client = MlflowClient(settings.mlflow_tracking_uri)
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", report.subject).strip("-")
        folder = f"drift/{report.kind}"
        client.log_text(report.reference_run_id, report_html(report), f"{folder}/{name}.html")
        client.log_text(report.reference_run_id, report_json(report), f"{folder}/{name}.json")
        uri = f"runs:/{report.reference_run_id}/{folder}/{name}.html"
        store.set_drift_artifact(report.id, uri)
        report = replace(report, artifact_uri=uri)
    return report
