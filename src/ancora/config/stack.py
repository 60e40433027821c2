"""The native launcher (`ancora stack`) and the Airflow processes it runs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from ancora.config.addresses import AddressSettings


class AirflowSettings(AddressSettings):
    """The Airflow account others call the API with, and the native Airflow's size."""

    airflow_parallelism: int = Field(
        default=4, ge=1, description="Airflow task slots natively (the default 32 wastes memory on 2 cores)."
    )
    airflow_username: str = Field(
        default="admin", description="Airflow account the task service triggers remote_task runs with."
    )
    airflow_password: SecretStr | None = Field(
        default=None, description="Password of airflow_username; default: the native stack's generated one."
    )

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"


class StackSettings(AirflowSettings):
    """How long `ancora stack up` and `down` wait."""

    stack_start_timeout_seconds: float = Field(
        default=120.0, gt=0, description="How long `ancora stack up` waits for every service to be healthy."
    )
    stack_stop_timeout_seconds: float = Field(
        default=15.0, gt=0, description="Grace period between SIGTERM and SIGKILL in `ancora stack down`."
    )
