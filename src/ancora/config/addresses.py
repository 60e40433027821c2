"""Where each service listens and how the others reach it: every role calls some other one."""

from __future__ import annotations

from pydantic import Field, field_validator

from ancora.config.base import CoreSettings, derived


class AddressSettings(CoreSettings):
    """Ports and URLs of the services; a URL left unset points at the native service on bind_host."""

    data_api_url: str = Field(
        default="http://127.0.0.1:8001",
        description="Base URL of the batch data API (the simulator or the course's own API).",
    )
    simulator_port: int = Field(default=8001, description="Port of the data API simulator.")
    airflow_port: int = Field(default=8080, description="Port of the Airflow API server and UI.")
    airflow_api_url: str = derived(
        "bind_host:airflow_port",
        lambda data: f"http://{data['bind_host']}:{data['airflow_port']}",
        "Airflow API server the task service and the UI call; default: the native one on "
        "bind_host:airflow_port.",
    )
    mlflow_port: int = Field(default=5000, description="Port of the MLflow tracking server.")
    mlflow_tracking_uri: str = derived(
        "bind_host:mlflow_port",
        lambda data: f"http://{data['bind_host']}:{data['mlflow_port']}",
        "Tracking URI clients use; default: the native server on mlflow_port.",
    )
    inference_port: int = Field(default=8000, description="Port of the inference API.")
    task_service_port: int = Field(
        default=8002, description="Port of the task service (remote jobs; the client library's server)."
    )
    task_service_url: str = derived(
        "bind_host:task_service_port",
        lambda data: f"http://{data['bind_host']}:{data['task_service_port']}",
        "URL the client library calls; default: the native task service.",
    )
    provisioning_port: int = Field(default=8003, description="Port of the BYOM provisioning API.")
    ui_port: int = Field(default=8501, description="Port of the Streamlit app.")

    @field_validator("airflow_api_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def inference_url(self) -> str:
        return f"http://{self.bind_host}:{self.inference_port}"

    @property
    def simulator_url(self) -> str:
        return f"http://{self.bind_host}:{self.simulator_port}"

    @property
    def provisioning_url(self) -> str:
        return f"http://{self.bind_host}:{self.provisioning_port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.bind_host}:{self.ui_port}"
