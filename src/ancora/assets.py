"""Names of the Airflow Assets that link the DAGs (data-aware scheduling)."""

RAW_COVERTYPE_URI = "ancora://raw/covertype"
"""Updated by covertype_collect whenever new rows were stored; schedules covertype_train."""
