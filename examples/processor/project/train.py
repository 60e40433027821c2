"""A random forest on the HTRU2 pulsar data: the smallest real job a submitted processor can be.

The dataset zip is unpacked into $DATASET_DIR by the task service's runner; MLflow's tracking URI
and experiment come from the environment the runner exports, and `mlflow run` resumes its run here.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import mlflow
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--random-state", type=int, default=42)
    parser.add_argument("--max-rows", type=int, default=0)
    args = parser.parse_args()

    data_file = next(Path(os.environ["DATASET_DIR"]).rglob("*.csv"))
    frame = pd.read_csv(data_file)
    if args.max_rows:
        frame = frame.sample(n=min(args.max_rows, len(frame)), random_state=args.random_state)
    features, label = frame.drop(columns="target_class"), frame["target_class"]
    x_train, x_test, y_train, y_test = train_test_split(
        features, label, test_size=0.25, stratify=label, random_state=args.random_state
    )
    model = RandomForestClassifier(n_estimators=args.n_estimators, random_state=args.random_state, n_jobs=1)
    with mlflow.start_run() as run:
        model.fit(x_train, y_train)
        score = f1_score(y_test, model.predict(x_test))
        mlflow.log_metric("f1", score)
        mlflow.set_tag("dataset", os.environ.get("DATASET_NAME", data_file.stem))
        print(f"f1={score:.4f} rows={len(frame)} MLFLOW_RUN_ID={run.info.run_id}")


if __name__ == "__main__":
    main()
