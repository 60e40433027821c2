"""What a submitted task asks for, turned into an argv and an environment without any shell.

``execution_command`` is split like a shell would split it (quotes respected) but never run by one:
it becomes an argv list, and wherever a shell does read it (the Slurm batch script) every word is
quoted again. So ``mlflow run project; rm -rf ~`` is ``mlflow`` with four arguments, not two commands.

An ``mlflow run`` command gets the task's MLflow run (``--run-id``, created by the service before
the job starts) and the operator's environment manager (``--env-manager``, unless the command names
one), so a project without a python_env runs in the environment the operator provides.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

ExecutionMode = Literal["mlflow", "no-mlflow"]
EXECUTION_MODES: tuple[str, ...] = ("mlflow", "no-mlflow")
ParamValue = str | int | float | bool

RUN_ID_PATTERNS = (
    re.compile(r"run with ID '([0-9a-f]{32})'"),
    re.compile(r"Run \(ID '([0-9a-f]{32})'\)"),
    re.compile(r"/runs/([0-9a-f]{32})"),
    re.compile(r"\bMLFLOW_RUN_ID[=: ]+([0-9a-f]{32})\b"),
)
"""How ``mlflow run`` and MLflow's fluent API announce the run in a job's log."""

MAX_PARAMS = 100
MAX_PARAM_VALUE_CHARS = 1000
MAX_COMMAND_CHARS = 4000
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@ -]{1,200}$")


class InvalidJob(ValueError):
    """The submission cannot become a job; the message is shown to the submitter."""


MLFLOW_RUN_OPTION = "--run-id"
ENV_MANAGER_OPTION = "--env-manager"


@dataclass(frozen=True)
class JobRequest:
    """Everything a runner needs; built from a stored task, so a retried submission is identical."""

    task_id: str
    argv: tuple[str, ...]
    environment: Mapping[str, str]
    instance_type: str
    account: str
    dataset_zip: str
    processor_zip: str
    local_work_dir: str
    """The service-side task folder with the validated zips and their unpacked copies."""
    model_params: Mapping[str, ParamValue] = field(default_factory=dict)


def check_model_params(params: Mapping[str, object]) -> dict[str, ParamValue]:
    """Parameter names must be identifiers and values scalars: they become ``-P name=value`` words."""
    if len(params) > MAX_PARAMS:
        raise InvalidJob(f"at most {MAX_PARAMS} model parameters are accepted")
    checked: dict[str, ParamValue] = {}
    for name, value in params.items():
        if not name.isidentifier():
            raise InvalidJob(f"model parameter name {name!r} is not an identifier")
        if not isinstance(value, str | int | float | bool):
            raise InvalidJob(f"model parameter {name!r} must be a string, number or boolean")
        if len(str(value)) > MAX_PARAM_VALUE_CHARS or "\x00" in str(value):
            raise InvalidJob(f"model parameter {name!r} is too long or contains a NUL byte")
        checked[name] = value
    return checked


def check_name(kind: str, value: str) -> str:
    """Experiment, dataset and account names reach file names and batch scripts: keep them plain."""
    if not NAME_PATTERN.fullmatch(value):
        raise InvalidJob(f"{kind} {value!r} must be 1-200 letters, digits, spaces or _ . @ -")
    return value


def param_text(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _names_option(words: list[str], option: str) -> bool:
    return any(word == option or word.startswith(f"{option}=") for word in words)


def is_mlflow_run(words: Sequence[str]) -> bool:
    return len(words) >= 2 and words[0].rsplit("/", 1)[-1] == "mlflow" and words[1] == "run"


def build_argv(
    execution_command: str,
    model_params: Mapping[str, ParamValue],
    *,
    env_manager: str | None = None,
    mlflow_run_id: str | None = None,
) -> tuple[str, ...]:
    """The command's words plus the parameters: ``-P k=v`` for ``mlflow run``, ``--k=v`` otherwise.

    For ``mlflow run``: ``--env-manager`` when the command names none, and ``--run-id`` of the task's
    run; a submitted command may not choose the run itself (it would write into another task's run).
    """
    if len(execution_command) > MAX_COMMAND_CHARS or "\x00" in execution_command:
        raise InvalidJob("execution_command is too long or contains a NUL byte")
    try:
        words = shlex.split(execution_command)
    except ValueError as problem:
        raise InvalidJob(f"execution_command cannot be split into words: {problem}") from problem
    if not words:
        raise InvalidJob("execution_command is empty")
    mlflow_run = is_mlflow_run(words)
    if mlflow_run and _names_option(words, MLFLOW_RUN_OPTION):
        raise InvalidJob("execution_command may not set --run-id: the task service creates the task's run")
    if mlflow_run and env_manager and not _names_option(words, ENV_MANAGER_OPTION):
        words += [ENV_MANAGER_OPTION, env_manager]
    if mlflow_run and mlflow_run_id:
        words += [MLFLOW_RUN_OPTION, mlflow_run_id]
    for name, value in model_params.items():
        if mlflow_run:
            words += ["-P", f"{name}={param_text(value)}"]
        else:
            words.append(f"--{name}={param_text(value)}")
    return tuple(words)


def job_environment(
    *,
    task_id: str,
    execution_mode: str,
    experiment_name: str,
    tracking_uri: str | None,
    dataset_name: str,
    dataset_dir: str,
    model_params: Mapping[str, ParamValue],
    mlflow_run_id: str | None = None,
) -> dict[str, str]:
    """The task's own variables; MLflow's only in ``mlflow`` mode, so ``no-mlflow`` jobs log nowhere.

    Nothing of the service's own environment is here: each runner starts the job with a minimal
    environment (PATH, HOME) plus exactly these."""
    environment = {
        "ANCORA_TASK_ID": task_id,
        "DATASET_NAME": dataset_name,
        "DATASET_DIR": dataset_dir,
        "ANCORA_MODEL_PARAMS": json.dumps(dict(model_params), sort_keys=True),
    }
    if execution_mode == "mlflow":
        environment["MLFLOW_EXPERIMENT_NAME"] = experiment_name
        if tracking_uri:
            environment["MLFLOW_TRACKING_URI"] = tracking_uri
        if mlflow_run_id:
            environment["MLFLOW_RUN_ID"] = mlflow_run_id
    return environment


def find_mlflow_run_id(log: str) -> str | None:
    """The last MLflow run id the job's log announces (``mlflow run`` prints it at start and end)."""
    found: str | None = None
    position = -1
    for pattern in RUN_ID_PATTERNS:
        for match in pattern.finditer(log):
            if match.start() > position:
                found, position = match.group(1), match.start()
    return found
