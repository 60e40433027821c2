"""The only part of ``ancora`` that imports Airflow: code that runs inside Airflow (DAG callbacks and
its notifiers). Everything else reaches Airflow over its REST API, so the task service, the inference
API and the UI install without it; an import-linter contract in pyproject.toml keeps it so."""
