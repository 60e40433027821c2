"""Collection: the batch data API polled and the raw-data store it fills."""

from __future__ import annotations

from pydantic import Field

from ancora.config.addresses import AddressSettings
from ancora.config.base import derived


class DataSettings(AddressSettings):
    """What `ancora collect` and the covertype_collect DAG read."""

    group_number: int = Field(default=1, ge=1, le=10, description="Group whose batches are collected.")
    data_api_timeout_seconds: float = Field(default=30.0, gt=0, description="HTTP timeout of one fetch.")
    data_db_url: str = derived(
        "SQLite under state_dir",
        lambda data: f"sqlite:///{data['state_dir'] / 'data' / 'raw.db'}",
        "SQLAlchemy URL of the raw-data store; default: SQLite under state_dir.",
    )
    collect_schedule: str = Field(
        default="*/5 * * * *",
        description="Schedule of covertype_collect: a cron expression or an Airflow preset "
        "(@continuous: back to back, for a simulator rotating in seconds).",
    )
