"""`ancora sagemaker ...` (the container's programs, data, image) and `ancora provisioning` (BYOM API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ancora.cli.faces import load_face
from ancora.config import Settings, get_settings

sagemaker_app = typer.Typer(
    help="SageMaker container programs, their data and their image.", no_args_is_help=True
)
provisioning_app = typer.Typer(
    help="The BYOM provisioning API (the MLOps Workload Orchestrator's endpoints) and its teardown.",
    invoke_without_command=True,
)


@sagemaker_app.command("prepare-data")
def prepare_data(
    output: Annotated[Path, typer.Argument(help="Training CSV to write (no header, label first).")],
    source: Annotated[
        Path | None, typer.Option(help="Pulsar CSV; default ANCORA_PULSAR_DATASET_PATH.")
    ] = None,
) -> None:
    """Write the pulsar data in SageMaker's training layout."""
    from ancora.sagemaker.data import write_training_csv

    rows = write_training_csv(source or get_settings().pulsar_dataset_path, output)
    typer.echo(f"wrote {rows} rows to {output}")


@sagemaker_app.command("payload")
def payload(
    output: Annotated[Path, typer.Argument(help="Payload CSV to write (no header, no label).")],
    rows: Annotated[int, typer.Option(min=1, help="Rows in the payload.")] = 10,
    positives: Annotated[int, typer.Option(min=0, help="How many of them are pulsars (class 1).")] = 3,
    source: Annotated[
        Path | None, typer.Option(help="Pulsar CSV; default ANCORA_PULSAR_DATASET_PATH.")
    ] = None,
) -> None:
    """Write an inference payload of pulsar rows, and print their true labels."""
    from ancora.sagemaker.data import write_payload_csv

    labels = write_payload_csv(
        source or get_settings().pulsar_dataset_path, output, rows, positives=positives
    )
    typer.echo(" ".join(str(label) for label in labels))


@sagemaker_app.command("requirements")
def requirements() -> None:
    """Regenerate sagemaker/requirements.txt (the image's pins and hashes) from uv.lock."""
    from ancora.sagemaker.image import write_image_requirements

    try:
        written = write_image_requirements()
    except FileNotFoundError as missing:
        typer.echo(f"error: {missing}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {written}")


@sagemaker_app.command(
    "run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False
)
def run(context: typer.Context) -> None:
    """Run a container program natively: `ancora sagemaker run train|serve|batch --prefix DIR ...`."""
    from ancora.sagemaker.container import main

    raise typer.Exit(main(context.args))


@sagemaker_app.command("build-and-push")
def build_and_push(
    name: Annotated[str, typer.Argument(help="Image and ECR repository name, e.g. random_forest.")],
    tag: Annotated[str, typer.Option(help="Image tag.")] = "latest",
) -> None:
    """Build sagemaker/Dockerfile and push it to ECR (repository created if missing)."""
    from ancora.sagemaker.ecr import BuildError
    from ancora.sagemaker.ecr import build_and_push as push

    try:
        pushed = push(get_settings(), name, tag)
    except BuildError as problem:
        typer.echo(f"build-and-push: {problem}", err=True)
        raise typer.Exit(1) from None
    if pushed.repository_created:
        typer.echo(f"created the ECR repository {name}")
    typer.echo(pushed.image_uri)


@provisioning_app.callback()
def provisioning(
    context: typer.Context,
    port: int | None = typer.Option(None, help="Port; default ANCORA_PROVISIONING_PORT (8003)."),
) -> None:
    """Run the BYOM provisioning API; `status` and `delete` talk to a running one."""
    if context.invoked_subcommand is not None:
        return
    import uvicorn

    create_app = load_face("ancora_provisioning.app", "byom").create_app
    settings = get_settings()  # a short token stops it here, with the variable's name (exit status 2)
    uvicorn.run(create_app(settings), host=settings.bind_host, port=port or settings.provisioning_port)


def _call(settings: Settings, url: str | None, path: str, body: dict[str, Any], read_only: bool) -> None:
    """POST to the running API with the configured token; print its JSON answer, exit 1 on an error."""
    import httpx

    token = settings.provisioning_token or (settings.provisioning_read_token if read_only else None)
    if token is None:
        typer.echo("set ANCORA_PROVISIONING_TOKEN (the API refuses calls without it)", err=True)
        raise typer.Exit(2)
    base = (url or settings.provisioning_url).rstrip("/")
    try:
        answer = httpx.post(
            f"{base}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token.get_secret_value()}"},
            timeout=settings.byom_start_timeout_seconds + 30,
        )
    except httpx.TransportError as problem:
        typer.echo(f"the provisioning API at {base} is unreachable: {problem}", err=True)
        raise typer.Exit(1) from None
    try:
        document: Any = answer.json()
    except ValueError:
        document = {"detail": answer.text}
    typer.echo(json.dumps(document, indent=2))
    if answer.status_code >= 400:
        raise typer.Exit(1)


UrlOption = Annotated[
    str | None,
    typer.Option(help="Provisioning API; default http://ANCORA_BIND_HOST:ANCORA_PROVISIONING_PORT."),
]


@provisioning_app.command("status")
def status(
    pipeline_id: Annotated[str, typer.Argument(help="The pipeline_id /provisionpipeline answered.")],
    url: UrlOption = None,
) -> None:
    """Print a pipeline's state (POST /pipelinestatus)."""
    _call(get_settings(), url, "/pipelinestatus", {"pipeline_id": pipeline_id}, read_only=True)


@provisioning_app.command("delete")
def delete(
    pipeline_id: Annotated[str | None, typer.Argument(help="The pipeline to tear down.")] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="Tear down this endpoint and every pipeline behind it.")
    ] = None,
    url: UrlOption = None,
) -> None:
    """Delete a pipeline's endpoint (or batch job), endpoint config and model (POST /deletepipeline)."""
    if (pipeline_id is None) == (endpoint is None):
        raise typer.BadParameter("give a PIPELINE_ID or --endpoint NAME, not both")
    body = {"pipeline_id": pipeline_id} if pipeline_id else {"endpoint_name": endpoint}
    _call(get_settings(), url, "/deletepipeline", body, read_only=False)
