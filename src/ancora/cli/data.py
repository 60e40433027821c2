"""Commands of the collection stage."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from ancora.collection import DataApiError, DataApiRejected, collect_batch
from ancora.config import get_settings
from ancora.store import RawRowStore, create_store_engine, open_raw_store, upgrade_schema

data_app = typer.Typer(help="Inspect the raw-data store.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the raw-data store's schema.", no_args_is_help=True)


def open_store() -> RawRowStore:
    return open_raw_store(get_settings().data_db_url)


def collect(
    run_id: str = typer.Option("", help="Id recorded with every stored row; default: cli-<UTC timestamp>."),
) -> None:
    """Run one collection cycle and print one JSON line with its counts."""
    settings = get_settings()
    store = open_store()
    try:
        result = collect_batch(
            store,
            settings.data_api_url,
            settings.group_number,
            settings.data_api_timeout_seconds,
            run_id or f"cli-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}",
        )
    except (DataApiError, DataApiRejected) as problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(code=1) from problem
    typer.echo(
        json.dumps(
            {
                "group": result.group,
                "batch": result.batch,
                "received": result.received,
                "inserted": result.inserted,
                "new_contents": result.new_contents,
                "duplicates": result.duplicates,
                "quarantined": result.quarantined,
                "exhausted": result.exhausted,
            }
        )
    )


@data_app.command("stats")
def stats(
    group: int | None = typer.Option(None, help="Only this group; default: all groups."),
) -> None:
    """Print stored rows per batch, distinct contents (new ones per batch) and quarantined rows as JSON."""
    typer.echo(json.dumps(open_store().stats(group).as_dict()))


@data_app.command("check")
def check(
    group: int | None = typer.Option(None, help="Only this group; default: all groups."),
) -> None:
    """Data tests on the stored rows: contract, content hashes, frozen evaluation sets; 1 on a problem."""
    from ancora.store.checks import check_stored_rows

    report = check_stored_rows(open_store().engine, group)
    typer.echo(json.dumps(report.as_dict()))
    if not report.ok:
        raise typer.Exit(code=1)


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply the Alembic migrations of the raw-data store."""
    settings = get_settings()
    upgrade_schema(create_store_engine(settings.data_db_url), revision)
    typer.echo(f"raw-data store at revision {revision}")
