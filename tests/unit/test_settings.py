from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ancora.config import Settings
from ancora.settings_docs import env_example, env_name, readme_with_settings_table
from tests.support.repo import REPO_ROOT


def test_env_example_and_readme_table_are_generated_from_the_settings() -> None:
    hint = "run `uv run ancora config write-docs`"
    assert (REPO_ROOT / ".env.example").read_text() == env_example(), hint
    readme = (REPO_ROOT / "README.md").read_text()
    assert readme == readme_with_settings_table(readme), hint


def test_every_setting_is_documented_in_the_readme_and_env_example() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    example = (REPO_ROOT / ".env.example").read_text()
    for name, info in Settings.model_fields.items():
        assert info.description, f"{name} has no description"
        assert env_name(name) in example
        assert f"`{env_name(name)}`" in readme, f"{env_name(name)} missing from the README's settings table"


def test_defaults_are_native_and_loopback(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    assert settings.bind_host == "127.0.0.1"
    assert settings.data_api_url == "http://127.0.0.1:8001"
    assert settings.resolved_data_db_url == f"sqlite:///{tmp_path / 'data' / 'raw.db'}"
    assert settings.admin_token is None


def test_environment_overrides_with_the_ancora_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCORA_GROUP_NUMBER", "7")
    monkeypatch.setenv("ANCORA_DATA_DB_URL", "mysql+pymysql://u@db/raw")
    settings = Settings()
    assert settings.group_number == 7
    assert settings.resolved_data_db_url == "mysql+pymysql://u@db/raw"


@pytest.mark.parametrize("group", ["0", "11", "x"])
def test_a_bad_group_number_names_the_variable(group: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCORA_GROUP_NUMBER", group)
    with pytest.raises(ValidationError, match="group_number"):
        Settings()


def test_no_credentials_in_env_example() -> None:
    example = (REPO_ROOT / ".env.example").read_text()
    for line in example.splitlines():
        if "TOKEN" in line or "PASSWORD" in line or "SECRET" in line:
            assert line.startswith("#"), line
