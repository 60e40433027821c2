"""
### covertype_train

Trains candidate models on the validated covertype rows, registers the best and gates its promotion.

* **Scheduled by data**: runs whenever `covertype_collect` updates the Asset `ancora://raw/covertype`
  (new rows were stored). Trigger it by hand with the params below to try other families or budgets.
* **train**: runs `ancora.training.run.train_and_register`, the same code as `ancora train` on a
  laptop, in a Slurm job or in a container. It reads the validated rows of the raw store (never the
  quarantine), keeps the frozen evaluation set out of training, searches every family with a bounded,
  seeded search and logs each candidate as a nested MLflow run under one parent run.
* **gate**: the best candidate becomes a new version of the registered model with alias
  `challenger`; alias `champion` moves to it only when its macro F1 on the frozen evaluation set beats
  the champion's by `ANCORA_PROMOTION_MARGIN` (the first model always becomes champion).
* **A young stack**: too few rows, or a class too small to stratify, end the task *skipped* with the
  reason (new data is needed, not another attempt; nothing is wrong). Bad params fail at once; an
  unreachable or failing MLflow fails the attempt and it is retried with exponential backoff. No
  version is registered before its artifacts load back.
* **gate_streak_alert**: when the gate kept the champion `ANCORA_ALERT_GATE_STREAK` times in a row
  (3 by default), one alert goes out by mail and webhook (docs/monitoring.md). A failed run alerts too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Asset, Param, dag, get_current_context, task

from ancora.airflow.notify import on_dag_failure
from ancora.assets import RAW_COVERTYPE_URI
from ancora.config import get_settings

FAMILY_CHOICES = ["logistic_regression", "random_forest", "hist_gradient_boosting"]

settings = get_settings()


@dag(
    dag_id="covertype_train",
    schedule=[Asset(uri=RAW_COVERTYPE_URI, name="raw_covertype")],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    tags=["ancora", "training", "covertype"],
    doc_md=__doc__,
    on_failure_callback=on_dag_failure,
    params={
        "families": Param(
            [f.strip() for f in settings.train_families.split(",") if f.strip()],
            type="array",
            items={"type": "string", "enum": FAMILY_CHOICES},
            minItems=1,
            uniqueItems=True,
            description="Model families to search.",
        ),
        "search_budget": Param(
            settings.train_search_budget,
            type="integer",
            minimum=1,
            maximum=50,
            description="Hyper-parameter configurations tried per family.",
        ),
    },
    default_args={
        "owner": "ancora",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
    },
)
def covertype_train() -> None:
    @task(execution_timeout=timedelta(hours=1))
    def train() -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from ancora.training.data import TrainingDataError
        from ancora.training.run import TrainingRequest, train_and_register

        params = get_current_context()["params"]
        current = get_settings()
        try:
            request = TrainingRequest.from_settings(
                current, list(params["families"]), int(params["search_budget"])
            )
            outcome = train_and_register(current, request)
        except TrainingDataError as young:
            raise AirflowSkipException(f"not enough data yet: {young}; nothing was registered") from young
        except ValueError as problem:
            raise AirflowFailException(f"{problem}; nothing was registered") from problem
        return outcome.summary()

    @task
    def gate_streak_alert(summary: dict[str, Any]) -> str | None:
        """Alert once when the gate kept the champion ANCORA_ALERT_GATE_STREAK times in a row."""
        from ancora.airflow.notify import alert
        from ancora.monitoring.alerts import gate_streak_alert as streak_alert

        found = streak_alert(get_settings())
        if found is None:
            return None
        alert(found)
        return found.dedupe_key

    gate_streak_alert(train())


covertype_train()
