"""`ancora sagemaker ...` (the container's programs, data shaping) and `ancora provisioning` (BYOM API)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ancora.config import get_settings

sagemaker_app = typer.Typer(help="SageMaker container programs and their data.", no_args_is_help=True)


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

    typer.echo(f"wrote {write_image_requirements()}")


@sagemaker_app.command(
    "run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False
)
def run(context: typer.Context) -> None:
    """Run a container program natively: `ancora sagemaker run train|serve|batch --prefix DIR ...`."""
    from ancora.sagemaker.container import main

    raise typer.Exit(main(context.args))


def provisioning(
    port: int | None = typer.Option(None, help="Port; default ANCORA_PROVISIONING_PORT (8003)."),
) -> None:
    """Run the BYOM provisioning API (the MLOps Workload Orchestrator's endpoints)."""
    import uvicorn

    from provisioning.app import create_app

    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.bind_host, port=port or settings.provisioning_port)
