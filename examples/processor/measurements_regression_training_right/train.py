"""Regress one measurement of a CSV from the others with a random forest, logged to MLflow.

The dataset zip is unpacked into $DATASET_DIR by the task service's runner; the first CSV found there
is read, its numeric columns are the measurements, and ``--target`` (default: the first column) is
predicted from the rest. MLflow's tracking URI, experiment and run come from the environment the
runner exports (MLFLOW_RUN_ID: the run the service created for the task), so ``start_run()``
resumes that run instead of opening another.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import mlflow
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--random-state", type=int, default=42)
    parser.add_argument("--target", default="")
    parser.add_argument("--max-rows", type=int, default=0)
    args = parser.parse_args()

    data_file = next(Path(os.environ["DATASET_DIR"]).rglob("*.csv"))
    measurements = pd.read_csv(data_file).select_dtypes("number")
    if args.max_rows:
        measurements = measurements.sample(
            n=min(args.max_rows, len(measurements)), random_state=args.random_state
        )
    target = args.target or str(measurements.columns[0])
    features, values = measurements.drop(columns=target), measurements[target]
    x_train, x_test, y_train, y_test = train_test_split(
        features, values, test_size=0.25, random_state=args.random_state
    )
    model = RandomForestRegressor(n_estimators=args.n_estimators, random_state=args.random_state, n_jobs=1)
    with mlflow.start_run() as run:
        model.fit(x_train, y_train)
        predicted = model.predict(x_test)
        r2 = r2_score(y_test, predicted)
        mlflow.log_param("target", target)
        mlflow.log_metrics({"r2": r2, "mae": mean_absolute_error(y_test, predicted)})
        mlflow.set_tag("dataset", os.environ.get("DATASET_NAME", data_file.stem))
        print(f"target={target} rows={len(measurements)} r2={r2:.4f} run={run.info.run_id}")


if __name__ == "__main__":
    main()
