"""Plain data shaping for the app's pages: API answers in, tables and form specs out.

No Streamlit here, so each rule (which registry tag is the gate decision, how a run's duration is
counted, how a DAG param becomes a widget) is tested on its own.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ancora.clients.mlflow import ModelVersion, Run
from ancora.locations import COVERTYPE_CSV, shipped_dataset
from ancora.schema import COVER_TYPE_NAMES, FEATURE_NAMES, LABEL_NAME

SAMPLE_DATA = shipped_dataset(COVERTYPE_CSV)
"""The shipped sample of the data set; its first rows of each class are offered to try."""

COLLECT_DAG = "covertype_collect"
TRAIN_DAG = "covertype_train"
DISPATCH_DAG = "covertype_dispatch"
TRIGGERABLE_DAGS = (COLLECT_DAG, TRAIN_DAG, DISPATCH_DAG)
FINISHED_RUN_STATES = frozenset({"success", "failed"})


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 text (Airflow, the inference API) or epoch milliseconds (MLflow), as aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def shown_time(value: Any) -> str:
    moment = parse_time(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def short_time(value: Any) -> str:
    """Month, day and minute: what fits a metric tile."""
    moment = parse_time(value)
    return moment.astimezone(UTC).strftime("%m-%d %H:%M UTC") if moment else ""


def duration_seconds(start: Any, end: Any, now: datetime | None = None) -> float | None:
    """Seconds from start to end; a run still going counts up to now."""
    began = parse_time(start)
    if began is None:
        return None
    ended = parse_time(end) or (now or datetime.now(UTC))
    return round((ended - began).total_seconds(), 1)


# --- Predict ---------------------------------------------------------------------------------------


def sample_rows(path: Path = SAMPLE_DATA, per_class: int = 1) -> list[dict[str, str]]:
    """The first ``per_class`` rows of each cover type in the shipped data, label included."""
    chosen: dict[str, list[dict[str, str]]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            label = row.get(LABEL_NAME, "")
            picked = chosen.setdefault(label, [])
            if len(picked) < per_class:
                picked.append(row)
            if len(chosen) == len(COVER_TYPE_NAMES) and all(len(v) >= per_class for v in chosen.values()):
                break
    return [row for label in sorted(chosen, key=_label_order) for row in chosen[label]]


def _label_order(label: str) -> int:
    return int(label) if label.isdigit() else 99


def sample_label(row: Mapping[str, str]) -> str:
    label = row.get(LABEL_NAME, "")
    name = COVER_TYPE_NAMES.get(int(label), "?") if label.isdigit() else "?"
    where = f"Elevation {row.get('Elevation')}, {row.get('Wilderness_Area')}, {row.get('Soil_Type')}"
    return f"{where} (true class {label}: {name})"


def sample_csv(path: Path = SAMPLE_DATA, rows: int = 20) -> str:
    """A small CSV in the upload format (the shipped header; the label column is ignored when scored)."""
    with path.open(newline="", encoding="utf-8") as handle:
        lines = [line for _, line in zip(range(rows + 1), handle, strict=False)]
    return "".join(lines)


def probabilities_frame(probabilities: Mapping[str, float]) -> pd.DataFrame:
    rows = [
        {
            "class": int(label),
            "cover type": f"{label} {COVER_TYPE_NAMES.get(int(label), '?')}",
            "probability": float(p),
        }
        for label, p in probabilities.items()
    ]
    return pd.DataFrame(rows).sort_values("class").reset_index(drop=True)


def read_uploaded_csv(content: bytes) -> pd.DataFrame:
    """The uploaded file as text columns, so it is sent exactly as the user wrote it."""
    return pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False)


def batch_result_frame(uploaded: pd.DataFrame, answer: Mapping[str, Any]) -> pd.DataFrame:
    """The predicted class, its name and its probability, then the uploaded row as it was sent."""
    predictions = list(answer.get("predictions", []))
    result = uploaded.reset_index(drop=True).copy()
    result["predicted_class"] = [int(p["prediction"]) for p in predictions]
    result["class_name"] = [str(p["class_name"]) for p in predictions]
    result["probability"] = [
        round(float(p["probabilities"].get(str(p["prediction"]), 0.0)), 4) for p in predictions
    ]
    result["model_version"] = str(answer.get("model_version", ""))
    first = ["predicted_class", "class_name", "probability"]
    return result[[*first, *(column for column in result.columns if column not in first)]]


def row_for_request(values: Mapping[str, Any]) -> dict[str, Any]:
    """Only the 12 features, in contract order; numbers as ints when they are whole."""
    row: dict[str, Any] = {}
    for name in FEATURE_NAMES:
        value = values[name]
        row[name] = int(value) if isinstance(value, float) and value.is_integer() else value
    return row


# --- Models ----------------------------------------------------------------------------------------


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def versions_frame(versions: Sequence[ModelVersion], mlflow_public_url: str) -> pd.DataFrame:
    """One row per registered version: aliases, family, scores and gate decision as training tagged them."""
    rows = [
        {
            "version": int(v.version) if v.version.isdigit() else v.version,
            "aliases": ", ".join(v.aliases),
            "family": v.tags.get("family", ""),
            "macro F1 (eval set)": _float(v.tags.get("macro_f1")),
            "champion macro F1 then": _float(v.tags.get("champion_macro_f1")),
            "gate decision": v.tags.get("gate_decision", ""),
            "eval set": v.tags.get("eval_set_version", ""),
            "engine": v.tags.get("serving_engine", "scikit-learn"),
            "label parity": _float(v.tags.get("parity_label_agreement")),
            "max prob. diff": _float(v.tags.get("parity_max_probability_diff")),
            "crossover rows": v.tags.get("crossover_rows", ""),
            "compile s": _float(v.tags.get("compile_seconds")),
            "registered": shown_time(v.created_ms),
            "status": v.status,
            "MLflow": f"{mlflow_public_url.rstrip('/')}/#/models/{v.name}/versions/{v.version}",
        }
        for v in versions
    ]
    return pd.DataFrame(rows)


def served_engine(models: Mapping[str, Any]) -> str | None:
    """One line on the engine the inference API serves with (its ``/models`` answer), or None."""
    engine = models.get("engine")
    if models.get("status") != "serving" or not isinstance(engine, Mapping):
        return None
    line = f"v{models.get('version')} is served by **{engine.get('serving')}**"
    below = engine.get("compiled_below_rows")
    if engine.get("serving") == "onnxruntime+scikit-learn" and below:
        line += f" (ONNX Runtime below {below} rows per call, scikit-learn from there)"
    parity = engine.get("parity")
    if isinstance(parity, Mapping):
        line += (
            f"; parity on {parity.get('rows')} rows: labels {float(parity.get('label_agreement', 0)):.4%}, "
            f"probabilities within {float(parity.get('max_probability_diff', 0)):.1e}"
        )
    if engine.get("serving") == "scikit-learn":
        line += f". {engine.get('reason', '')}"
    return line


CANDIDATE_METRICS = (
    "validation_macro_f1",
    "validation_accuracy",
    "validation_log_loss",
    "fit_time_seconds",
)


def candidates_frame(children: Iterable[Run], mlflow_public_url: str) -> pd.DataFrame:
    """The candidates of one training run side by side, best validation macro F1 first."""
    rows = []
    for run in children:
        row: dict[str, Any] = {
            "candidate": run.run_name or run.run_id[:8],
            "family": run.tags.get("ancora.family", run.params.get("family", "")),
        }
        for metric in CANDIDATE_METRICS:
            row[metric] = run.metrics.get(metric)
        row["MLflow run"] = (
            f"{mlflow_public_url.rstrip('/')}/#/experiments/{run.experiment_id}/runs/{run.run_id}"
        )
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values("validation_macro_f1", ascending=False, na_position="last").reset_index(
        drop=True
    )


def family_evaluation_frame(training_run: Run) -> pd.DataFrame:
    """Each family's best candidate scored on the frozen evaluation set (metrics eval_<family>_<name>)."""
    scores: dict[str, dict[str, float]] = {}
    for key, value in training_run.metrics.items():
        if not key.startswith("eval_"):
            continue
        for metric in ("macro_f1", "accuracy", "log_loss"):
            suffix = f"_{metric}"
            if key.endswith(suffix):
                family = key.removeprefix("eval_").removesuffix(suffix)
                scores.setdefault(family, {})[metric] = value
    rows = [{"family": family, **values} for family, values in sorted(scores.items())]
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class GateView:
    decision: str
    reason: str
    challenger_macro_f1: float | None
    champion_macro_f1: float | None


def gate_view(training_run: Run) -> GateView:
    """The gate as training logged it: tags ancora.gate.* and the challenger/champion eval metrics."""
    return GateView(
        decision=training_run.tags.get("ancora.gate.decision", ""),
        reason=training_run.tags.get("ancora.gate.reason", ""),
        challenger_macro_f1=training_run.metrics.get("challenger_eval_macro_f1"),
        champion_macro_f1=training_run.metrics.get("champion_eval_macro_f1"),
    )


# --- Pipelines and Monitor ------------------------------------------------------------------------


def dag_run_row(
    run: Mapping[str, Any], airflow_public_url: str, now: datetime | None = None
) -> dict[str, Any]:
    dag_id = str(run.get("dag_id", ""))
    run_id = str(run.get("dag_run_id", ""))
    return {
        "run": run_id,
        "state": str(run.get("state", "")),
        "type": str(run.get("run_type", "")),
        "start": shown_time(run.get("start_date")),
        "end": shown_time(run.get("end_date")),
        "duration (s)": duration_seconds(run.get("start_date"), run.get("end_date"), now),
        "Airflow": f"{airflow_public_url.rstrip('/')}/dags/{dag_id}/runs/{run_id}",
    }


def dags_frame(
    dags: Sequence[Mapping[str, Any]],
    last_runs: Mapping[str, Mapping[str, Any] | None],
    airflow_public_url: str,
) -> pd.DataFrame:
    rows = []
    for dag in dags:
        dag_id = str(dag["dag_id"])
        last = last_runs.get(dag_id)
        rows.append(
            {
                "DAG": dag_id,
                "paused": bool(dag.get("is_paused")),
                "schedule": str(dag.get("timetable_summary") or dag.get("timetable_description") or ""),
                "last run state": str(last.get("state", "")) if last else "never ran",
                "last run start": shown_time(last.get("start_date")) if last else "",
                "last run duration (s)": (
                    duration_seconds(last.get("start_date"), last.get("end_date")) if last else None
                ),
                "next run": shown_time(next_run_time(dag)),
                "Airflow": f"{airflow_public_url.rstrip('/')}/dags/{dag_id}",
            }
        )
    return pd.DataFrame(rows)


def next_run_time(dag: Mapping[str, Any]) -> Any:
    """When the scheduler will create the next run (Airflow 3: next_dagrun_run_after)."""
    return dag.get("next_dagrun_run_after") or dag.get("next_dagrun_logical_date") or dag.get("next_dagrun")


@dataclass(frozen=True)
class ParamField:
    """One DAG param as a form widget: kind is multiselect, select, integer, number, boolean or text."""

    name: str
    kind: str
    default: Any
    description: str
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


def param_fields(params: Mapping[str, Any] | None) -> list[ParamField]:
    """Airflow's dumped Params ({"value", "schema", "description"}) as widget specs."""
    fields = []
    for name, dumped in (params or {}).items():
        param = dumped if isinstance(dumped, dict) else {"value": dumped}
        schema = param.get("schema") or {}
        kind_of = schema.get("type")
        value = param.get("value")
        description = str(param.get("description") or schema.get("description") or "")
        items = schema.get("items") or {}
        if kind_of == "array" and items.get("enum"):
            fields.append(
                ParamField(name, "multiselect", list(value or []), description, tuple(items["enum"]))
            )
        elif schema.get("enum"):
            fields.append(ParamField(name, "select", value, description, tuple(schema["enum"])))
        elif kind_of == "integer":
            fields.append(
                ParamField(
                    name, "integer", value, description, (), schema.get("minimum"), schema.get("maximum")
                )
            )
        elif kind_of == "number":
            fields.append(
                ParamField(
                    name, "number", value, description, (), schema.get("minimum"), schema.get("maximum")
                )
            )
        elif kind_of == "boolean":
            fields.append(ParamField(name, "boolean", bool(value), description))
        else:
            fields.append(ParamField(name, "text", value, description))
    return fields


def collection_frame(results: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows stored and quarantined per batch, summed over the collect runs' `store` results."""
    totals: dict[int, dict[str, int]] = {}
    for result in results:
        batch = result.get("batch")
        if batch is None:
            continue
        entry = totals.setdefault(int(batch), {"collected": 0, "quarantined": 0, "duplicates": 0, "runs": 0})
        entry["collected"] += int(result.get("inserted", 0))
        entry["quarantined"] += int(result.get("quarantined", 0))
        entry["duplicates"] += int(result.get("duplicates", 0))
        entry["runs"] += 1
    rows = [{"batch": batch, **values} for batch, values in sorted(totals.items())]
    return pd.DataFrame(rows, columns=["batch", "collected", "quarantined", "duplicates", "runs"])


# --- Dispatches -----------------------------------------------------------------------------------

DISPATCH_COLUMNS = (
    "id",
    "state",
    "started_at",
    "ended_at",
    "model_version",
    "rows_read",
    "rows_predicted",
    "rows_invalid",
    "rows_written",
    "error",
    "dag_run_id",
)


def dispatches_frame(dispatches: Sequence[Mapping[str, Any]], text: str = "") -> pd.DataFrame:
    """The dispatch list as a table; ``text`` keeps rows whose id, run, model or error contains it."""
    rows = []
    needle = text.strip().lower()
    for item in dispatches:
        row = {column: item.get(column) for column in DISPATCH_COLUMNS}
        row["model_version"] = (
            f"{item.get('model_name')} v{item.get('model_version')}" if item.get("model_version") else ""
        )
        row["started_at"] = shown_time(item.get("started_at"))
        row["ended_at"] = shown_time(item.get("ended_at"))
        row["duration (s)"] = (
            duration_seconds(item.get("started_at"), item.get("ended_at")) if item.get("ended_at") else None
        )
        haystack = " ".join(str(row.get(k) or "") for k in ("id", "dag_run_id", "model_version", "error"))
        if needle and needle not in haystack.lower():
            continue
        rows.append(row)
    return pd.DataFrame(rows, columns=[*DISPATCH_COLUMNS, "duration (s)"])


def events_frame(events: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    rows = [
        {"event": e.get("event"), "at": shown_time(e.get("at")), "detail": e.get("detail") or ""}
        for e in sorted(events, key=lambda e: parse_time(e.get("at")) or datetime.min.replace(tzinfo=UTC))
    ]
    return pd.DataFrame(rows, columns=["event", "at", "detail"])


def predictions_frame(predictions: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    columns = ["row_key", "predicted_class", "class_name", "status", "error"]
    return pd.DataFrame([{c: p.get(c) for c in columns} for p in predictions], columns=columns)


def to_csv(frame: pd.DataFrame) -> str:
    return str(frame.to_csv(index=False))


# --- Tasks -----------------------------------------------------------------------------------------

FINISHED_TASK_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "SUCCEEDED", "STOPPED"})


def visible_tasks(
    tasks: Sequence[Mapping[str, Any]], username: str, is_admin: bool
) -> list[Mapping[str, Any]]:
    """Everyone's tasks for an admin, the user's own otherwise (owner is the task service user name)."""
    return [task for task in tasks if is_admin or str(task.get("owner")) == username]


def tasks_frame(tasks: Sequence[Mapping[str, Any]], mlflow_public_url: str) -> pd.DataFrame:
    rows = []
    for task in tasks:
        run_id = task.get("run_id")
        rows.append(
            {
                "task": str(task.get("id")),
                "owner": str(task.get("owner")),
                "status": str(task.get("status")),
                "runner": str(task.get("runner_location")),
                "experiment": str(task.get("experiment_name")),
                "run id": str(run_id or ""),
                "MLflow": f"{mlflow_public_url.rstrip('/')}/#/runs/{run_id}" if run_id else None,
                "submitted": shown_time(task.get("created_at")),
                "finished": shown_time(task.get("finished_at")),
            }
        )
    return pd.DataFrame(rows)


# --- Monitor: drift ---------------------------------------------------------------------------------


def drift_pivot(history: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Score per feature (columns) over report time (index), for one kind of report."""
    chosen = history[history["kind"] == kind] if not history.empty else history
    if chosen.empty:
        return pd.DataFrame()
    return chosen.pivot_table(index="created_at", columns="feature", values="score", aggfunc="last")


def class_mix_frame(class_mix_json: str) -> pd.DataFrame:
    """Training labels against the current (predicted) classes, one row per class, as shares."""
    mix = json.loads(class_mix_json or "{}")
    reference, current = mix.get("reference", {}), mix.get("current", {})
    labels = sorted(set(reference) | set(current), key=int)
    return pd.DataFrame(
        [
            {
                "class": f"{label} {COVER_TYPE_NAMES.get(int(label), '?')}",
                "training labels": float(reference.get(label, 0.0)),
                "served / predicted": float(current.get(label, 0.0)),
            }
            for label in labels
        ]
    )
