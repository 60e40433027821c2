"""Monitoring: drift reports, alerts, the health watch and the Monitor page (src/ancora/monitoring/)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import NoDecode

from ancora.config.base import json_text
from ancora.config.serving import DispatchSettings
from ancora.config.training import TrainingSettings


class ExtraHost(BaseModel):
    """One extra check of the Monitor page and the health watch (ANCORA_MONITOR_EXTRA_HOSTS)."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    kind: Literal["tcp", "tls", "dns"] = "tcp"
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    warn_days: float = 14.0

    @model_validator(mode="after")
    def _port_and_name(self) -> ExtraHost:
        if self.port is None and self.kind == "tls":
            self.port = 443
        if self.port is None and self.kind != "dns":
            raise ValueError("'port' (1..65535) is required for a tcp check")
        self.name = self.name or f"{self.kind} {self.host}"
        return self

    @property
    def target(self) -> str:
        return self.host if self.kind == "dns" else f"{self.host}:{self.port}"


class MonitoringSettings(DispatchSettings, TrainingSettings):
    """What the drift, alert and health-watch DAGs read (they compare against training data)."""

    drift_served_schedule: str = Field(
        default="0 * * * *",
        description="Cron schedule of covertype_drift_served, which compares the last served window "
        "with the champion's training data.",
    )
    drift_window_hours: float = Field(
        default=1.0, gt=0, description="Length of the served window covertype_drift_served compares."
    )
    drift_min_rows: int = Field(
        default=30, ge=1, description="A batch or window with fewer rows is not compared (skipped)."
    )
    drift_reference_max_rows: int = Field(
        default=20_000, ge=100, description="Most training rows sampled as the drift reference."
    )
    drift_numeric_threshold: float = Field(
        default=0.1,
        gt=0,
        description="Normed Wasserstein distance above which a numeric feature counts as drifted.",
    )
    drift_categorical_threshold: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Jensen-Shannon distance above which a categorical feature or the class mix drifted.",
    )
    drift_share_threshold: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of drifted features at or above which a report breaches (raises an alert).",
    )
    drift_retrain: bool = Field(
        default=False, description="Trigger covertype_train when a drift report breaches the threshold."
    )
    alert_smtp_connection: SecretStr | None = Field(
        default=None,
        description="Airflow connection URI of the SMTP server alerts are mailed through, e.g. "
        "smtp://user:password@mail.example.org:587?from_email=ancora%40example.org; unset: no mail.",
    )
    alert_email_to: str = Field(default="", description="Comma-separated addresses alert mails go to.")
    alert_webhook_url: SecretStr | None = Field(
        default=None,
        description='Slack-compatible incoming webhook alerts are posted to ({"text": ...}); unset: none.',
    )
    alert_unhealthy_minutes: float = Field(
        default=10.0, gt=0, description="A service unhealthy for longer than this raises an alert."
    )
    alert_gate_streak: int = Field(
        default=3, ge=1, description="Gate rejections in a row (kept champion) that raise an alert."
    )
    health_watch_schedule: str = Field(
        default="*/5 * * * *", description="Cron schedule of ancora_health_watch, which probes every service."
    )
    monitor_extra_hosts: Annotated[list[ExtraHost], NoDecode, json_text(empty=[])] = Field(
        default_factory=list,
        description="JSON list of extra checks for the Monitor page and the health watch: "
        '{"name", "kind" (tcp, tls or dns), "host", "port", "warn_days"}.',
    )
    monitor_history_days: float = Field(
        default=7.0, gt=0, description="How far back the Monitor page plots drift and lists alerts."
    )
