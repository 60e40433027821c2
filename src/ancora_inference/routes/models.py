"""What is served, and a forced check of the alias."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from ancora.serving.registry import ServedModel
from ancora_inference.dependencies import AdminDep, RuntimeDep
from ancora_inference.schemas import EngineParity, EngineStatus, ErrorMessage, ModelStatus, ReloadResult

router = APIRouter(tags=["models"])


@router.get("/models", summary="The served model", response_model=ModelStatus)
async def models(runtime: RuntimeDep) -> ModelStatus:
    """Name, alias, version, run and load time of the served model, and the latest check's outcome."""
    model = runtime.watcher.current
    last = runtime.watcher.last_check
    ref = model.ref if model is not None else None
    return ModelStatus(
        name=runtime.registry.name,
        alias=runtime.registry.alias,
        registry_uri=runtime.registry.registry_uri,
        status="serving" if model is not None else "waiting",
        version=ref.version if ref else None,
        run_id=ref.run_id if ref else None,
        source=ref.source if ref else None,
        loaded_at=model.loaded_at if model is not None else None,
        load_seconds=model.load_seconds if model is not None else None,
        poll_interval_seconds=runtime.watcher.interval_seconds,
        last_check_at=last.checked_at if last is not None else None,
        last_check_error=last.error if last is not None else None,
        engine=engine_status(model) if model is not None else None,
    )


def engine_status(model: ServedModel) -> EngineStatus:
    report = model.compile_report
    compiled = model.compiled
    serving: Literal["onnxruntime", "scikit-learn", "onnxruntime+scikit-learn"]
    if compiled is None:
        serving = "scikit-learn"
    elif report.crossover_rows is None:
        serving = "onnxruntime"
    else:
        serving = "onnxruntime+scikit-learn"
    parity = report.parity
    return EngineStatus(
        serving=serving,
        compile_status=report.status,
        reason=report.reason,
        compiled_below_rows=report.crossover_rows if compiled is not None else None,
        compile_seconds=report.compile_seconds if report.status != "not_compiled" else None,
        parity=None if parity is None else EngineParity(**parity.__dict__, passed=parity.passed),
        method=report.method,
        versions=report.versions,
    )


@router.post(
    "/reload",
    summary="Check the alias now",
    response_model=ReloadResult,
    dependencies=[AdminDep],
    responses={
        401: {"model": ErrorMessage, "description": "Missing or wrong admin token."},
        503: {"model": ErrorMessage, "description": "No admin token configured: reload is disabled."},
    },
)
async def reload(runtime: RuntimeDep) -> ReloadResult:
    """Ask the registry at once instead of waiting for the next poll; swaps if the alias moved. With
    several HTTP workers, the answer is this worker's; the others check within a second."""
    result = await runtime.reload()
    return ReloadResult(
        changed=result.changed,
        model_version=result.model.ref.version if result.model is not None else None,
        error=result.error,
    )
