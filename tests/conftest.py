"""Fixtures shared by every kind of test: isolated settings, the real MariaDB, Airflow's test database."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ancora.config import get_settings
from tests.support.airflow import configure_airflow_for_tests, migrate_airflow_db
from tests.support.databases import throwaway_mariadb, throwaway_postgres
from tests.support.repo import REPO_ROOT

SHARED_DATA = Path(os.environ.get("ANCORA_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def pytest_configure(config: pytest.Config) -> None:
    configure_airflow_for_tests(Path(tempfile.mkdtemp(prefix="ancora-airflow-")))


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets its own state folder and no stray ANCORA_* variables from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("ANCORA_") and name not in (
            "ANCORA_SHARED_DATA",
            "ANCORA_TEST_MYSQL_URL",
            "ANCORA_TEST_POSTGRES_URL",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ANCORA_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def covertype_csv() -> Path:
    path = SHARED_DATA / "covertype" / "covertype.csv"
    assert path.exists(), f"covertype data not found at {path}; set ANCORA_SHARED_DATA"
    return path


@pytest.fixture(scope="session")
def pulsar_csv() -> Path:
    path = SHARED_DATA / "pulsar" / "HTRU_2.csv"
    assert path.exists(), f"pulsar data not found at {path}; set ANCORA_SHARED_DATA"
    return path


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A throwaway database on the machine's MariaDB, dropped after the test."""
    with throwaway_mariadb() as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway database on the machine's PostgreSQL, dropped after the test."""
    with throwaway_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Airflow's metadata database for dag.test(), migrated once per test session."""
    migrate_airflow_db()
