"""Commands, parameters and batch scripts: what a submitter sends never becomes shell code."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ancora.config import InstanceType
from ancora.remote.jobs import InvalidJob, build_argv, check_model_params, find_mlflow_run_id, job_environment
from ancora.remote.slurm import (
    ClusterPlan,
    parse_sbatch_output,
    plan_for,
    render_batch_script,
    state_command,
)
from ancora.remote.status import TaskStatus, from_slurm

TASK = "0123456789abcdef0123456789abcdef"
PLAN = ClusterPlan(InstanceType(partition="gpu", gpus=1, time_limit="04:00:00"), slurm_account="twinscie")


def test_mlflow_run_gets_parameters_as_dash_p() -> None:
    argv = build_argv("mlflow run project --env-manager local", {"n_estimators": 2, "random_state": 42})
    assert argv == (
        "mlflow", "run", "project", "--env-manager", "local", "-P", "n_estimators=2", "-P", "random_state=42",
    )  # fmt: skip


def test_other_commands_get_parameters_as_long_options() -> None:
    assert build_argv("python 'my script.py'", {"alpha": 0.5, "fast": True}) == (
        "python", "my script.py", "--alpha=0.5", "--fast=true",
    )  # fmt: skip


@pytest.mark.parametrize(
    "params", [{"bad-name": 1}, {"1st": 1}, {"x; rm": 1}, {"nested": {"a": 1}}, {"lst": [1]}]
)
def test_parameter_names_must_be_identifiers_and_values_scalars(params: dict[str, object]) -> None:
    with pytest.raises(InvalidJob):
        check_model_params(params)


@pytest.mark.parametrize("command", ["", "   ", "python 'unclosed", "a\x00b"])
def test_unusable_commands_are_refused(command: str) -> None:
    with pytest.raises(InvalidJob):
        build_argv(command, {})


def test_the_batch_script_quotes_every_submitted_word(tmp_path: object) -> None:
    hostile = "mlflow run project; touch /tmp/owned $(id) `id`"
    argv = build_argv(hostile, {"n": "$(reboot)"})
    script = render_batch_script(
        task_id=TASK,
        work_dir="/home/u/ancora-tasks/" + TASK,
        argv=argv,
        environment={
            "MLFLOW_EXPERIMENT_NAME": "x'; rm -rf ~; '",
            "ANCORA_MODEL_PARAMS": json.dumps({"n": 1}),
        },
        plan=PLAN,
        setup="module load python",
    )
    assert "#SBATCH --partition=gpu" in script
    assert "#SBATCH --account=twinscie" in script
    assert "#SBATCH --gpus=1" in script
    assert "#SBATCH --time=04:00:00" in script
    assert "module load python" in script
    # bash itself parses the exported values and the exec line back into exactly the words sent
    body = script.replace("exec ", "printf '%s\\n' ").replace("module load python", "")
    probe = body + '\nprintf "%s\\n" "$MLFLOW_EXPERIMENT_NAME"\n'
    words = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout
    assert words.splitlines() == [*argv, "x'; rm -rf ~; '"]


def test_instance_types_and_accounts_come_from_settings() -> None:
    types = {"gpu": InstanceType(partition="gpu", gpus=2, time_limit="1-00:00:00")}
    accounts = {"twinscie": "proj42"}
    plan = plan_for("gpu", "twinscie", types, accounts)
    assert (plan.instance.partition, plan.instance.gpus, plan.slurm_account) == ("gpu", 2, "proj42")
    with pytest.raises(InvalidJob, match="not offered"):
        plan_for("tpu", "twinscie", types, accounts)
    with pytest.raises(InvalidJob, match="may not submit"):
        plan_for("gpu", "someone", types, accounts)


def test_sbatch_output_and_job_ids_are_checked() -> None:
    assert parse_sbatch_output("4242\n") == "4242"
    assert parse_sbatch_output("4242;cluster\n") == "4242"
    with pytest.raises(RuntimeError):
        parse_sbatch_output("sbatch: error: invalid partition")
    with pytest.raises(ValueError):
        state_command("1; reboot")


@pytest.mark.parametrize(
    ("slurm", "status"),
    [
        ("PENDING", TaskStatus.PENDING),
        ("CONFIGURING", TaskStatus.PENDING),
        ("RUNNING", TaskStatus.RUNNING),
        ("COMPLETING", TaskStatus.RUNNING),
        ("COMPLETED", TaskStatus.COMPLETED),
        ("CANCELLED", TaskStatus.CANCELLED),
        ("CANCELLED by 0", TaskStatus.CANCELLED),
        ("FAILED", TaskStatus.FAILED),
        ("TIMEOUT", TaskStatus.FAILED),
        ("OUT_OF_MEMORY", TaskStatus.FAILED),
        ("NODE_FAIL", TaskStatus.FAILED),
    ],
)
def test_slurm_states_map_to_five_statuses(slurm: str, status: TaskStatus) -> None:
    assert from_slurm(slurm) is status


def test_the_run_id_is_read_from_mlflow_run_output() -> None:
    log = (
        "INFO mlflow.projects.backend.local: === Running command 'python train.py' in run with ID "
        "'bbd7fa82b3e7444895120a32330d1fa5' === \nf1=0.83\n"
        "INFO mlflow.projects: === Run (ID 'bbd7fa82b3e7444895120a32330d1fa5') succeeded ===\n"
    )
    assert find_mlflow_run_id(log) == "bbd7fa82b3e7444895120a32330d1fa5"
    assert find_mlflow_run_id("no run here") is None


def test_mlflow_run_gets_the_operators_env_manager_unless_it_names_one() -> None:
    """The seed's command runs unchanged: no environment is built on a node without internet."""
    seed = build_argv(
        "mlflow run measurements_regression_training_right", {"n_estimators": 2}, env_manager="local"
    )
    assert seed == (
        "mlflow", "run", "measurements_regression_training_right",
        "--env-manager", "local", "-P", "n_estimators=2",
    )  # fmt: skip
    for own in ("mlflow run p --env-manager virtualenv", "mlflow run p --env-manager=uv"):
        assert build_argv(own, {}, env_manager="local").count("local") == 0
    assert build_argv("python train.py", {}, env_manager="local") == ("python", "train.py")


def test_mlflow_run_is_handed_the_tasks_run_and_may_not_choose_another() -> None:
    run_id = "0123456789abcdef0123456789abcdef"
    argv = build_argv("mlflow run p", {}, env_manager="local", mlflow_run_id=run_id)
    assert argv[-2:] == ("--run-id", run_id)
    for chosen in ("mlflow run p --run-id " + run_id, "mlflow run p --run-id=" + run_id):
        with pytest.raises(InvalidJob, match="may not set --run-id"):
            build_argv(chosen, {})
    environment = job_environment(
        task_id=TASK, execution_mode="mlflow", experiment_name="e", tracking_uri="http://m:5000",
        dataset_name="d", dataset_dir="/d", model_params={}, mlflow_run_id=run_id,
    )  # fmt: skip
    assert environment["MLFLOW_RUN_ID"] == run_id
    plain = job_environment(
        task_id=TASK, execution_mode="no-mlflow", experiment_name="e", tracking_uri="http://m:5000",
        dataset_name="d", dataset_dir="/d", model_params={}, mlflow_run_id=run_id,
    )  # fmt: skip
    assert not any(name.startswith("MLFLOW_") for name in plain)


def test_the_batch_script_starts_the_job_from_a_minimal_environment(tmp_path: Path) -> None:
    """Run the rendered script's body under bash with a crowded environment and look at what is left."""
    script = render_batch_script(
        task_id=TASK,
        work_dir="/home/u/ancora-tasks/" + TASK,
        argv=("env",),
        environment={"ANCORA_TASK_ID": TASK, "DATASET_DIR": "/d"},
        plan=PLAN,
        setup="export PATH=/opt/venv/bin:$PATH",
    )
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    crowded = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/home/u",
        "USER": "u",
        "SLURM_JOB_ID": "42",
        "MODULEPATH": "/opt/modules",
        "SSH_CLIENT": "10.0.0.1 5555 22",
        "SSH_CONNECTION": "10.0.0.1 5555 10.0.0.2 22",
        "ANCORA_ADMIN_TOKEN": "secret-token",
        "AIRFLOW__CORE__FERNET_KEY": "fernet-secret",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
    }
    output = subprocess.run(
        ["bash", str(path)], env=crowded, capture_output=True, text=True, check=True
    ).stdout
    seen = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    assert seen["PATH"] == "/opt/venv/bin:/usr/bin:/bin"
    assert seen["SLURM_JOB_ID"] == "42" and seen["MODULEPATH"] == "/opt/modules" and seen["HOME"] == "/home/u"
    assert seen["ANCORA_TASK_ID"] == TASK and seen["DATASET_DIR"] == "/d"
    for gone in (
        "SSH_CLIENT",
        "SSH_CONNECTION",
        "ANCORA_ADMIN_TOKEN",
        "AIRFLOW__CORE__FERNET_KEY",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert gone not in seen
    assert "secret" not in output
