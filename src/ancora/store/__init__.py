"""The raw-data store: typed tables behind SQLAlchemy, schema owned by Alembic."""

from ancora.store.database import create_store_engine, upgrade_schema
from ancora.store.queries import validated_rows_query
from ancora.store.raw_rows import BatchWrite, RawRowStore, RunTotals, StoreStats, open_raw_store
from ancora.store.staging import Staging

__all__ = [
    "BatchWrite",
    "RawRowStore",
    "RunTotals",
    "Staging",
    "StoreStats",
    "create_store_engine",
    "open_raw_store",
    "upgrade_schema",
    "validated_rows_query",
]
