"""Training: read validated rows, search candidate pipelines, track them in MLflow, gate promotion."""
