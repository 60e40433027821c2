"""The data API simulator, a stand-in for the course's batch server."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ancora.config.addresses import AddressSettings
from ancora.config.base import derived
from ancora.locations import COVERTYPE_CSV, shipped_dataset


class SimulatorSettings(AddressSettings):
    """What `ancora data-api` reads."""

    simulator_rotation_seconds: float = Field(
        default=300.0, gt=0, description="Seconds between batch advances in the simulator."
    )
    simulator_dataset_path: Path = Field(
        default=shipped_dataset(COVERTYPE_CSV),
        description="CSV the simulator serves (header row, label last); default: the shipped sample, "
        "ancora/datasets/covertype/covertype.csv in the installed package.",
    )
    simulator_state_path: Path = derived(
        "state_dir/data_api/state.json",
        lambda data: data["state_dir"] / "data_api" / "state.json",
        "JSON file keeping the simulator's per-group state across restarts.",
    )
    simulator_batches: int = Field(default=10, ge=1, description="Number of batches the data is split into.")
    simulator_seed: int | None = Field(
        default=None, description="Seed of the simulator's sampling; unset for a fresh random sample."
    )
    simulator_mode: Literal["reference", "intended"] = Field(
        default="reference",
        description="Which rows the simulator serves: reference (as the course's server really does: every "
        "batch samples the group's one slice, group 10 answers HTTP 500) or intended (batch B samples the "
        "B-th slice, fresh rows every batch).",
    )
