"""What a training run read, from its own lineage: the dataset queries it logged in MLflow, re-run."""

from __future__ import annotations

import json

import sqlalchemy as sa
from mlflow import MlflowClient


def logged_queries(client: MlflowClient, run_id: str) -> dict[str, str]:
    """The source query of each dataset the run logged, by context ("training", "evaluation")."""
    queries: dict[str, str] = {}
    inputs = client.get_run(run_id).inputs
    assert inputs is not None, f"run {run_id} logged no datasets"
    for entry in inputs.dataset_inputs:
        context = next(tag.value for tag in entry.tags if tag.key == "mlflow.data.context")
        queries[context] = json.loads(entry.dataset.source)["query"]
    return queries


def contents_of(store_url: str, query: str) -> list[str]:
    """Content hashes of the rows a logged query returns today (the queries are pinned: the same rows)."""
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as connection:
            return [str(row.content_hash) for row in connection.execute(sa.text(query))]
    finally:
        engine.dispose()


def every_evaluation_content(store_url: str) -> set[str]:
    """Every content any evaluation set version holds, as the store says today."""
    engine = sa.create_engine(store_url)
    query = sa.text("SELECT content_hash FROM evaluation_set_contents")
    try:
        with engine.connect() as connection:
            return {str(content) for content in connection.execute(query).scalars()}
    finally:
        engine.dispose()
