"""The Streamlit app (`ancora ui`, `ancora users`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from ancora.config.base import derived
from ancora.config.stack import AirflowSettings
from ancora.config.training import RegistrySettings


class UiSettings(AirflowSettings, RegistrySettings):
    """The app's own settings: its users, refresh, and the addresses it calls and links to."""

    ui_users_file: Path = derived(
        "state_dir/ui/users.yaml",
        lambda data: data["state_dir"] / "ui" / "users.yaml",
        "YAML file of the app's users (Argon2 hashes, roles); default: state_dir/ui/users.yaml.",
    )
    ui_refresh_seconds: float = Field(
        default=15.0, ge=2, le=3600, description="Auto-refresh interval of the Monitor and running DAG runs."
    )
    ui_http_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of the app's calls to Airflow, MLflow and the inference API."
    )
    ui_inference_url: str = derived(
        "bind_host:inference_port",
        lambda data: f"http://{data['bind_host']}:{data['inference_port']}",
        "Inference API the app calls; default: the native one on inference_port.",
    )
    ui_airflow_public_url: str = derived(
        "airflow_api_url",
        lambda data: data["airflow_api_url"],
        "Airflow UI address the app links to in the browser; default: airflow_api_url.",
    )
    ui_mlflow_public_url: str = derived(
        "mlflow_tracking_uri",
        lambda data: data["mlflow_tracking_uri"].rstrip("/"),
        "MLflow UI address the app links to in the browser; default: the tracking URI.",
    )
    ui_sign_in_max_failures: int = Field(
        default=5,
        ge=1,
        description="Failed sign-ins a username may have in ui_sign_in_window_seconds before it is locked.",
    )
    ui_sign_in_window_seconds: float = Field(
        default=900.0,
        gt=0,
        description="Window of ui_sign_in_max_failures; a locked username unlocks as its failures age out.",
    )
    ui_task_service_username: str | None = Field(
        default=None,
        description="Task service account of the UI's Tasks page (an admin there lists everyone's tasks; "
        "the page shows each user their own); default: task_service_username.",
    )
    ui_task_service_password: SecretStr | None = Field(
        default=None, description="Password of ui_task_service_username; default: task_service_password."
    )

    @field_validator("ui_users_file")
    @classmethod
    def _home_expanded(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("ui_inference_url", "ui_airflow_public_url", "ui_mlflow_public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")
