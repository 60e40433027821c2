"""The MLflow tracking server the native stack and the mlflow image run."""

from __future__ import annotations

from pydantic import Field

from ancora.config.addresses import AddressSettings
from ancora.config.base import derived


class MlflowServerSettings(AddressSettings):
    """Where the tracking server keeps runs and artifacts, and whom it answers."""

    mlflow_backend_store_uri: str = derived(
        "SQLite under state_dir",
        lambda data: f"sqlite:///{data['state_dir'] / 'mlflow' / 'mlflow.db'}",
        "MLflow server's backend store; default: SQLite under state_dir.",
    )
    mlflow_artifacts_destination: str = derived(
        "state_dir/mlflow/artifacts",
        lambda data: str(data["state_dir"] / "mlflow" / "artifacts"),
        "MLflow artifact destination (folder or s3://bucket/prefix); default under state_dir.",
    )
    mlflow_allowed_hosts: str | None = Field(
        default=None,
        description="Host headers MLflow accepts (--allowed-hosts); default: its localhost set.",
    )
