"""The typed settings of Ancora, one class per role and their aggregate.

Every URL, port, path and credential is read here, from ``ANCORA_*`` environment variables (or a
``.env`` file), so services, DAGs, the CLI and the UI never disagree about where things are. A role's
process loads only its class (``load_settings(ServingSettings)``), so a bad variable of another role
cannot stop it; the launcher, the CLI and the DAGs load the aggregate ``Settings``. A default that
follows other settings (a database under state_dir) is computed once, at load.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import model_validator

from ancora.config.addresses import AddressSettings
from ancora.config.base import CoreSettings, InvalidSettings, load_settings
from ancora.config.data import DataSettings
from ancora.config.mlflow_server import MlflowServerSettings
from ancora.config.monitoring import ExtraHost, MonitoringSettings
from ancora.config.remote import InstanceType, RemoteSettings
from ancora.config.sagemaker import MIN_PROVISIONING_TOKEN_LENGTH, ProvisioningSettings, SagemakerSettings
from ancora.config.serving import DispatchSettings, ModelSettings, ServingSettings
from ancora.config.simulator import SimulatorSettings
from ancora.config.stack import AirflowSettings, StackSettings
from ancora.config.training import RegistrySettings, TrainingSettings
from ancora.config.ui import UiSettings

__all__ = [
    "MIN_PROVISIONING_TOKEN_LENGTH",
    "AddressSettings",
    "AirflowSettings",
    "CoreSettings",
    "DataSettings",
    "DispatchSettings",
    "ExtraHost",
    "InstanceType",
    "InvalidSettings",
    "MlflowServerSettings",
    "ModelSettings",
    "MonitoringSettings",
    "ProvisioningSettings",
    "RegistrySettings",
    "RemoteSettings",
    "SagemakerSettings",
    "ServingSettings",
    "Settings",
    "SimulatorSettings",
    "StackSettings",
    "TrainingSettings",
    "UiSettings",
    "get_settings",
    "load_settings",
]


class Settings(
    StackSettings,
    UiSettings,
    ProvisioningSettings,
    RemoteSettings,
    MonitoringSettings,
    ServingSettings,
    MlflowServerSettings,
    TrainingSettings,
    SimulatorSettings,
):
    """Every role's settings: what the launcher, the CLI and the DAGs read."""

    @model_validator(mode="after")
    def _separate_tokens(self) -> Settings:
        """One leaked token must not open the other doors: each token is its own."""
        tokens = {
            "ANCORA_ADMIN_TOKEN": self.admin_token,
            "ANCORA_PROVISIONING_TOKEN": self.provisioning_token,
            "ANCORA_PROVISIONING_READ_TOKEN": self.provisioning_read_token,
        }
        seen: dict[str, str] = {}
        for name, token in tokens.items():
            if token is None or not token.get_secret_value():
                continue
            other = seen.setdefault(token.get_secret_value(), name)
            if other != name:
                raise ValueError(f"{name} must differ from {other}: each token grants different rights")
        return self


@lru_cache
def get_settings() -> Settings:
    """Build the settings once per process; tests clear the cache after changing the environment.

    Raises InvalidSettings, one ``ANCORA_X: problem`` line per bad variable.
    """
    return load_settings(Settings)
