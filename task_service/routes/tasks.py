"""Submit, follow, cancel and list tasks. Only a task's owner or an admin sees or cancels it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from fastapi.responses import JSONResponse

from ancora.remote.archive import UnsafeArchive
from ancora.remote.jobs import InvalidJob
from ancora.remote.service import ExecutorUnavailable, SubmissionFields, parse_params
from ancora.remote.store import Task
from task_service.dependencies import ServiceDep, UserDep
from task_service.schemas import Logs, RunId, TaskView

router = APIRouter(prefix="/tasks", tags=["tasks"])
NOT_FOUND = "no such task (or it is not yours)"


def view(task: Task) -> TaskView:
    return TaskView(**task.public())


@router.post("", status_code=201, response_model=TaskView)
def submit(
    service: ServiceDep,
    user: UserDep,
    dataset_file: Annotated[UploadFile, File(description="The dataset, a zip.")],
    processor_file: Annotated[UploadFile, File(description="The code to run, a zip.")],
    dataset_name: Annotated[str | None, Form()] = None,
    runner_location: Annotated[str, Form()] = "atena02",
    execution_mode: Annotated[str, Form()] = "mlflow",
    experiment_name: Annotated[str, Form()] = "default_experiment",
    execution_command: Annotated[str, Form()] = "mlflow run project",
    tracking_uri: Annotated[str | None, Form()] = None,
    instance_type: Annotated[str, Form()] = "gpu",
    account: Annotated[str, Form()] = "default_account",
    model_params: Annotated[str | None, Form(description="JSON object of parameters.")] = None,
) -> TaskView | JSONResponse:
    try:
        fields = SubmissionFields(
            dataset_name=dataset_name or None,
            runner_location=runner_location,
            execution_mode=execution_mode,
            experiment_name=experiment_name,
            execution_command=execution_command,
            tracking_uri=tracking_uri or None,
            instance_type=instance_type,
            account=account,
            model_params=parse_params(model_params),
        )
        task = service.submit(
            user,
            fields,
            dataset=(dataset_file.filename or "dataset.zip", dataset_file.file),
            processor=(processor_file.filename or "processor.zip", processor_file.file),
        )
    except (InvalidJob, UnsafeArchive) as problem:
        raise HTTPException(400, str(problem)) from problem
    except ExecutorUnavailable as problem:
        return JSONResponse(status_code=502, content={"detail": str(problem)})
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
