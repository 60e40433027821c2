from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from ancora.cli import INVALID_SETTINGS_EXIT_CODE, app
from ancora.config import (
    DataSettings,
    ExtraHost,
    InstanceType,
    InvalidSettings,
    ProvisioningSettings,
    RemoteSettings,
    ServingSettings,
    Settings,
    SimulatorSettings,
    TrainingSettings,
    UiSettings,
    get_settings,
    load_settings,
)
from ancora.config.base import derived_rule
from ancora.config.remote import RunnerKind
from ancora.remote.runners.base import RUNNER_MODULES
from ancora.settings_docs import env_example, env_name, readme_with_settings_table
from ancora.stack.services import ancora_environment
from ancora_inference.app import create_app
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


def test_derived_defaults_are_documented_by_their_rule_not_this_machine() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    example = (REPO_ROOT / ".env.example").read_text()
    assert "| `ANCORA_DATA_DB_URL` | `(derived: SQLite under state_dir)` |" in readme
    assert "\n# ANCORA_DATA_DB_URL=\n" in example
    assert str(Settings().state_dir) not in readme + example


def test_defaults_are_native_and_loopback(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    assert settings.bind_host == "127.0.0.1"
    assert settings.data_api_url == "http://127.0.0.1:8001"
    assert settings.data_db_url == f"sqlite:///{tmp_path / 'data' / 'raw.db'}"
    assert settings.admin_token is None


def test_environment_overrides_with_the_ancora_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCORA_GROUP_NUMBER", "7")
    monkeypatch.setenv("ANCORA_DATA_DB_URL", "mysql+pymysql://u@db/raw")
    settings = Settings()
    assert settings.group_number == 7
    assert settings.data_db_url == "mysql+pymysql://u@db/raw"


STATE_DIR_DEFAULTS = [
    name
    for name, info in Settings.model_fields.items()
    if "state_dir" in (derived_rule(info.json_schema_extra) or "")
]


def test_every_default_derived_from_state_dir_follows_it(tmp_path: Path) -> None:
    assert len(STATE_DIR_DEFAULTS) >= 12
    for state_dir in (tmp_path / "one", tmp_path / "two"):
        settings = Settings(state_dir=state_dir)
        for name in STATE_DIR_DEFAULTS:
            assert str(state_dir) in str(getattr(settings, name)), name


def test_derived_defaults_follow_the_settings_they_come_from(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, bind_host="10.0.0.5", mlflow_port=5055, byom_target="sagemaker")
    assert settings.mlflow_tracking_uri == "http://10.0.0.5:5055"
    assert settings.ui_mlflow_public_url == "http://10.0.0.5:5055"
    assert settings.airflow_api_url == "http://10.0.0.5:8080"
    assert settings.task_service_url == "http://10.0.0.5:8002"
    assert settings.byom_assets_root == "s3://ancora-sagemaker/"
    assert settings.byom_data_roots == [str(tmp_path / "provisioning" / "data"), "s3://ancora-sagemaker/"]
    chosen = Settings(
        state_dir=tmp_path,
        mlflow_tracking_uri="http://mlflow.example/",
        airflow_api_url="http://airflow.example/",
        data_db_url="mysql+pymysql://u@db/raw",
        byom_data_roots=" /data/a, s3://lake/in/ ,",  # type: ignore[arg-type]
    )
    assert chosen.ui_mlflow_public_url == "http://mlflow.example"
    assert chosen.airflow_api_url == chosen.ui_airflow_public_url == "http://airflow.example"
    assert chosen.data_db_url == "mysql+pymysql://u@db/raw"
    assert chosen.byom_data_roots == ["/data/a", "s3://lake/in/"]


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("ANCORA_HPC_INSTANCE_TYPES", '{"gpu": {"partition": "gpu"', "Expecting"),
        ("ANCORA_HPC_INSTANCE_TYPES", '{"gpu": {"partiton": "gpu"}}', "(at gpu.partiton): Extra inputs"),
        ("ANCORA_HPC_INSTANCE_TYPES", '{"gpu": {"partition": "gpu\\n#SBATCH --x"}}', "(at gpu.partition)"),
        ("ANCORA_HPC_INSTANCE_TYPES", '{"gpu": {"partition": "gpu", "time_limit": "4h"}}', "time_limit"),
        ("ANCORA_HPC_ACCOUNTS", '{"twinscie": "proj 42"}', "(at twinscie)"),
        ("ANCORA_HPC_ACCOUNTS", '["twinscie"]', "valid dictionary"),
        ("ANCORA_REMOTE_LOCATIONS", '{"atena02": "slurm"}', "(at atena02): Input should be 'hpc'"),
        ("ANCORA_DATALAKE_FEATURE_COLUMNS", "{not json", "Expecting property name"),
        ("ANCORA_DATALAKE_FEATURE_COLUMNS", '["Elevation"]', "valid dictionary"),
        ("ANCORA_DATALAKE_FEATURE_COLUMNS", '{"Height": "height"}', "unknown features: Height"),
        ("ANCORA_DATALAKE_FEATURE_COLUMNS", '{"Elevation": " "}', "(at Elevation)"),
        ("ANCORA_MONITOR_EXTRA_HOSTS", "[", "Expecting value"),
        (
            "ANCORA_MONITOR_EXTRA_HOSTS",
            '[{"kind": "tcp", "host": "x"}]',
            "(at 0): 'port' (1..65535) is required",
        ),
        ("ANCORA_MONITOR_EXTRA_HOSTS", '[{"kind": "ping", "host": "x"}]', "(at 0.kind)"),
        ("ANCORA_MONITOR_EXTRA_HOSTS", '[{"host": "x", "prot": 22}]', "(at 0.prot)"),
    ],
)
def test_a_typo_in_a_json_setting_fails_at_load_with_its_name(
    variable: str, value: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidSettings) as caught:
        get_settings()
    problems = caught.value.problems
    assert all(line.startswith(variable) for line in problems), problems
    assert any(problem in line for line in problems), problems


def test_blank_json_settings_mean_none_and_valid_ones_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCORA_DATALAKE_FEATURE_COLUMNS", " ")
    monkeypatch.setenv("ANCORA_MONITOR_EXTRA_HOSTS", '[{"kind": "tls", "host": "example.org"}]')
    monkeypatch.setenv(
        "ANCORA_HPC_INSTANCE_TYPES", '{"big": {"partition": "cpu", "cpus": 64, "mem": "256G"}}'
    )
    settings = get_settings()
    assert settings.datalake_feature_columns == {}
    assert settings.monitor_extra_hosts == [
        ExtraHost(name="tls example.org", kind="tls", host="example.org", port=443, warn_days=14)
    ]
    assert settings.hpc_instance_types == {"big": InstanceType(partition="cpu", cpus=64, mem="256G")}
    monkeypatch.delenv("ANCORA_HPC_INSTANCE_TYPES")
    assert Settings().hpc_instance_types["gpu"] == InstanceType(
        partition="gpu", gpus=1, time_limit="04:00:00"
    )


def test_every_runner_kind_a_location_may_name_has_a_runner() -> None:
    assert set(get_args(RunnerKind)) == set(RUNNER_MODULES)


OTHER_ROLES_BROKEN = {
    "ANCORA_GROUP_NUMBER": "0",
    "ANCORA_HPC_INSTANCE_TYPES": "{typo",
    "ANCORA_DATALAKE_FEATURE_COLUMNS": "{typo",
    "ANCORA_MONITOR_EXTRA_HOSTS": "[typo",
    "ANCORA_PROVISIONING_TOKEN": "short",
    "ANCORA_UI_REFRESH_SECONDS": "0",
    "ANCORA_SIMULATOR_BATCHES": "0",
}
OWN_VARIABLES: dict[type[BaseSettings], set[str]] = {
    ServingSettings: {"ANCORA_DATALAKE_FEATURE_COLUMNS"},
    RemoteSettings: {"ANCORA_HPC_INSTANCE_TYPES"},
    ProvisioningSettings: {"ANCORA_PROVISIONING_TOKEN"},
    UiSettings: {"ANCORA_UI_REFRESH_SECONDS"},
    SimulatorSettings: {"ANCORA_SIMULATOR_BATCHES"},
    TrainingSettings: {"ANCORA_GROUP_NUMBER"},
    DataSettings: {"ANCORA_GROUP_NUMBER"},
}


@pytest.mark.parametrize("role", list(OWN_VARIABLES), ids=lambda role: role.__name__)
def test_a_role_loads_whatever_the_other_roles_variables_hold(
    role: type[BaseSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in OTHER_ROLES_BROKEN.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidSettings) as caught:
        load_settings(role)
    assert {line.split(":")[0].split(" ")[0] for line in caught.value.problems} == OWN_VARIABLES[role]
    for name in OWN_VARIABLES[role]:
        monkeypatch.delenv(name)
    assert isinstance(load_settings(role), role)
    with pytest.raises(InvalidSettings):
        get_settings()


def test_the_inference_app_reads_only_the_serving_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in OTHER_ROLES_BROKEN.items():
        if name not in OWN_VARIABLES[ServingSettings]:
            monkeypatch.setenv(name, value)
    settings = create_app().state.runtime.settings
    assert type(settings) is ServingSettings


def test_the_aggregate_names_every_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in OTHER_ROLES_BROKEN.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidSettings) as caught:
        get_settings()
    assert {line.split(":")[0].split(" ")[0] for line in caught.value.problems} == set(OTHER_ROLES_BROKEN)


@pytest.mark.parametrize("group", ["0", "11", "x"])
def test_a_bad_group_number_names_the_variable(group: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCORA_GROUP_NUMBER", group)
    with pytest.raises(ValidationError, match="group_number"):
        Settings()
    with pytest.raises(InvalidSettings, match=r"^ANCORA_GROUP_NUMBER: "):
        get_settings()


def test_no_credentials_in_env_example() -> None:
    example = (REPO_ROOT / ".env.example").read_text()
    for line in example.splitlines():
        if "TOKEN" in line or "PASSWORD" in line or "SECRET" in line:
            assert line.startswith("#"), line


def test_the_command_says_which_variable_is_wrong_and_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCORA_HPC_INSTANCE_TYPES", '{"gpu": {"partiton": "gpu"}}')
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == INVALID_SETTINGS_EXIT_CODE
    assert "ANCORA_HPC_INSTANCE_TYPES (at gpu.partiton): Extra inputs are not permitted" in result.output
    assert "Traceback" not in result.output


def test_config_show_prints_final_values_and_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCORA_TASK_SERVICE_PASSWORD", "pa55-w0rd-here")
    monkeypatch.setenv("ANCORA_REMOTE_DB_URL", "mysql+pymysql://tasks:pa55-w0rd-here@db/tasks")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "pa55-w0rd-here" not in result.output
    shown = json.loads(result.output)
    assert shown["data_db_url"] == get_settings().data_db_url
    assert shown["remote_db_url"] == "mysql+pymysql://tasks:***@db/tasks"
    assert shown["hpc_instance_types"]["gpu"]["partition"] == "gpu"


def test_children_of_the_launcher_parse_back_every_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        _env_file=None,
        state_dir=tmp_path,
        data_api_url="http://course.example",
        hpc_instance_types={"big": InstanceType(partition="cpu", cpus=8)},
        monitor_extra_hosts=[ExtraHost(kind="dns", host="example.org")],
        datalake_feature_columns={"Elevation": "elevation_m"},
        byom_data_roots=["/data/a", "s3://lake/in/"],
        admin_token="a-token-of-sorts",  # type: ignore[arg-type]
    )
    for name, value in ancora_environment(settings).items():
        monkeypatch.setenv(name, value)
    assert Settings(_env_file=None).model_dump() == settings.model_dump()
