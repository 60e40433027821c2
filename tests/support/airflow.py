"""Airflow for tests: its configuration must be in the environment before airflow is first imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ancora.airflow_env import airflow_environment
from ancora.config import Settings


def configure_airflow_for_tests(home: Path) -> dict[str, str]:
    """Point this process's Airflow at a throwaway SQLite database under `home`."""
    env = airflow_environment(Settings(state_dir=home))
    os.environ.update(env)
    return env


def migrate_airflow_db() -> None:
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
        timeout=300,
    )
