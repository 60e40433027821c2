"""What one collect run's tasks hand on to the next, kept in the raw store instead of Airflow's XCom.

Rows are the store's business: a 2,000-row response is about 200 KB of JSON, and XCom would copy it
through Airflow's metadata database twice (fetch to validate, validate to store). Here each stage of a
run is one row keyed by (run id, stage), so a retried attempt overwrites what the failed one left, and
the store task deletes the run's rows in the transaction that stores the data.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from ancora.store.tables import collection_staging

STALE_AFTER = timedelta(days=1)
"""Staged input of a run that never reached its store task (it failed for good) is purged after this."""


class Staging:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(self, run_id: str, stage: str, payload: dict[str, Any]) -> None:
        """Keep `payload` as the run's `stage`, replacing what an earlier attempt left."""
        with self.engine.begin() as connection:
            connection.execute(
                delete(collection_staging).where(
                    (collection_staging.c.run_id == run_id) & (collection_staging.c.stage == stage)
                )
            )
            connection.execute(
                insert(collection_staging).values(
                    run_id=run_id, stage=stage, payload=json.dumps(payload), created_at=datetime.now(UTC)
                )
            )

    def get(self, run_id: str, stage: str) -> dict[str, Any] | None:
        query = select(collection_staging.c.payload).where(
            (collection_staging.c.run_id == run_id) & (collection_staging.c.stage == stage)
        )
        with self.engine.connect() as connection:
            payload = connection.execute(query).scalar()
        return None if payload is None else dict(json.loads(payload))

    def stages(self, run_id: str) -> list[str]:
        query = select(collection_staging.c.stage).where(collection_staging.c.run_id == run_id)
        with self.engine.connect() as connection:
            return sorted(str(stage) for (stage,) in connection.execute(query))

    def purge_stale(self, now: datetime | None = None) -> int:
        """Delete what runs that died before their store task left behind; returns how many rows."""
        cutoff = (now or datetime.now(UTC)).astimezone(UTC) - STALE_AFTER
        stale = delete(collection_staging).where(collection_staging.c.created_at < cutoff)
        with self.engine.begin() as connection:
            return int(connection.execute(stale).rowcount)
