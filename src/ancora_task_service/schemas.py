"""Request and response bodies of the task service."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=1024)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 token type, not a secret)
    expires_in: int
    username: str
    is_admin: bool


class TaskView(BaseModel):
    """A task as its owner sees it. ``id`` is the task's id (TaskHandler takes it); ``job_id`` the
    job's id where it runs: the Slurm job id or local PID (inline) or the Airflow DAG run id."""

    id: str
    job_id: str | None
    owner: str
    status: str
    dataset_name: str
    runner_location: str
    runner_kind: str
    execution_mode: str
    experiment_name: str
    execution_command: str
    tracking_uri: str | None
    instance_type: str
    account: str
    model_params: dict[str, Any]
    external_job_id: str | None
    airflow_run_id: str | None
    work_dir: str | None
    run_id: str | None
    detail: str
    created_at: str
    updated_at: str
    finished_at: str | None


class RunId(BaseModel):
    id: str
    status: str
    run_id: str | None
    experiment_name: str
    tracking_uri: str | None


class Logs(BaseModel):
    id: str
    status: str
    log: str
