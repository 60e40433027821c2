"""Submit, follow, cancel and list tasks. Only a task's owner or an admin sees or cancels it."""

from __future__ import annotations

import shutil
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ancora.remote.archive import UnsafeArchive
from ancora.remote.jobs import InvalidJob
from ancora.remote.service import (
    ExecutorUnavailable,
    Forbidden,
    QuotaExceeded,
    SubmissionFields,
    UploadTooLarge,
    parse_params,
)
from ancora.remote.store import Task
from ancora_task_service.dependencies import ServiceDep, UserDep
from ancora_task_service.schemas import Logs, RunId, TaskView
from ancora_task_service.uploads import BadForm, boundary_of, receive_submission

router = APIRouter(prefix="/tasks", tags=["tasks"])
NOT_FOUND = "no such task (or it is not yours)"

FORM_DEFAULTS = {
    "runner_location": "atena02",
    "execution_mode": "mlflow",
    "experiment_name": "default_experiment",
    "execution_command": "mlflow run project",
    "instance_type": "gpu",
    "account": "default_account",
}
"""The Submitter's defaults, for a form that leaves a field out."""


def _text_field(description: str, default: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "description": description}
    if default is not None:
        schema["default"] = default
    return schema


SUBMISSION_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["dataset_file", "processor_file"],
                    "properties": {
                        "dataset_file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The dataset, a zip.",
                        },
                        "processor_file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The code to run, a zip.",
                        },
                        "dataset_name": _text_field("Name of the dataset; default: the zip's name."),
                        **{
                            name: _text_field(name.replace("_", " ").capitalize() + ".", default)
                            for name, default in FORM_DEFAULTS.items()
                        },
                        "tracking_uri": _text_field("MLflow tracking URI; default: the service's."),
                        "model_params": _text_field("JSON object of parameters.", "{}"),
                    },
                }
            }
        },
    }
}

REFUSALS: tuple[tuple[type[Exception], int], ...] = (
    (BadForm, 400),
    (InvalidJob, 400),
    (UnsafeArchive, 400),
    (Forbidden, 403),
    (UploadTooLarge, 413),
    (QuotaExceeded, 507),
)


def view(task: Task) -> TaskView:
    return TaskView(**task.public())


def refusal(problem: Exception) -> HTTPException:
    for kind, status in REFUSALS:
        if isinstance(problem, kind):
            return HTTPException(getattr(problem, "status_code", status), str(problem))
    raise problem


def declared_length(request: Request) -> int | None:
    text = request.headers.get("content-length")
    if text is None:
        return None
    if not text.isdigit():
        raise HTTPException(400, "Content-Length is not a number")
    return int(text)


def submission_fields(form: dict[str, str]) -> SubmissionFields:
    values = {**FORM_DEFAULTS, **{name: value for name, value in form.items() if name in FORM_DEFAULTS}}
    return SubmissionFields(
        dataset_name=form.get("dataset_name") or None,
        tracking_uri=form.get("tracking_uri") or None,
        model_params=parse_params(form.get("model_params")),
        **values,
    )


@router.post(
    "",
    status_code=201,
    response_model=TaskView,
    openapi_extra=SUBMISSION_FORM,
    responses={
        400: {"description": "A bad field or archive; the detail names it."},
        401: {"description": "No valid token (checked before the body is read)."},
        403: {"description": "The runner location is for admins only."},
        413: {"description": "A zip or the request is larger than the service accepts."},
        415: {"description": "The body is not multipart/form-data."},
        502: {"description": "The task was recorded but its runner, Airflow or MLflow refused it."},
        507: {"description": "The user's kept task files would pass their disk quota."},
    },
)
async def submit(request: Request, service: ServiceDep, user: UserDep) -> TaskView | JSONResponse:
    """Send a dataset zip and a processor zip with the Submitter's fields (multipart/form-data).

    The login, the declared size and the user's quota are checked before the body is read; the
    zips are then streamed into the task's folder, each byte counted."""
    try:
        await run_in_threadpool(service.admit, user, declared_length(request))
        boundary_of(request.headers.get("content-type"))
    except (BadForm, UploadTooLarge, QuotaExceeded) as problem:
        raise refusal(problem) from problem
    task_id, folder = await run_in_threadpool(service.new_task_folder)
    try:
        form = await receive_submission(
            request, folder, service.max_upload_bytes, max_request_bytes=service.max_request_bytes
        )
        fields = submission_fields(form.fields)
    except Exception as problem:
        await run_in_threadpool(shutil.rmtree, folder, True)
        raise refusal(problem) from problem
    try:
        task = await run_in_threadpool(
            service.accept_folder, user, fields, task_id, folder, form.filenames["dataset"]
        )
        task = await run_in_threadpool(service.hand_on, task)
    except ExecutorUnavailable as problem:
        return JSONResponse(status_code=502, content={"detail": str(problem)})
    except Exception as problem:
        raise refusal(problem) from problem
    return view(task)


@router.get("", response_model=list[TaskView])
def list_tasks(service: ServiceDep, user: UserDep) -> list[TaskView]:
    """The caller's tasks, newest first; an admin sees everyone's."""
    return [view(task) for task in service.list_for(user)]


@router.get("/{task_id}", response_model=TaskView)
def status(task_id: str, service: ServiceDep, user: UserDep) -> TaskView:
    try:
        return view(service.visible(user, task_id))
    except KeyError as problem:
        raise HTTPException(404, NOT_FOUND) from problem


@router.get("/{task_id}/run_id", response_model=RunId)
def run_id(task_id: str, service: ServiceDep, user: UserDep) -> RunId:
    """The MLflow run the job logged to; null until the job's log has named it."""
    try:
        task = service.visible(user, task_id)
    except KeyError as problem:
        raise HTTPException(404, NOT_FOUND) from problem
    return RunId(
        id=task.id,
        status=task.status.value,
        run_id=task.mlflow_run_id,
        experiment_name=task.experiment_name,
        tracking_uri=task.tracking_uri,
    )


@router.get("/{task_id}/logs", response_model=Logs)
def logs(task_id: str, service: ServiceDep, user: UserDep) -> Logs:
    """The end of the job's output: live while it runs, the kept copy once it ended."""
    try:
        text = service.logs(user, task_id)
        task = service.visible(user, task_id)
    except KeyError as problem:
        raise HTTPException(404, NOT_FOUND) from problem
    return Logs(id=task.id, status=task.status.value, log=text)


@router.post("/{task_id}/cancel", response_model=TaskView)
def cancel(task_id: str, service: ServiceDep, user: UserDep) -> TaskView:
    try:
        return view(service.cancel(user, task_id))
    except KeyError as problem:
        raise HTTPException(404, NOT_FOUND) from problem
