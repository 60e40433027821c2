"""Throwaway databases on the machine's MariaDB and PostgreSQL, for tests and benchmarks alike.

Each is created with a random name and dropped afterwards, whatever happens in between.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

MARIADB_SERVER_URL = os.environ.get("ANCORA_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")
POSTGRES_SERVER_URL = os.environ.get(
    "ANCORA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def throwaway_mariadb(server_url: str = MARIADB_SERVER_URL, prefix: str = "ancora_test") -> Iterator[str]:
    """URL of a new, empty utf8mb4 database on the MariaDB/MySQL server at ``server_url``."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    server = sa.create_engine(server_url)
    with server.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield f"{server_url}/{name}?charset=utf8mb4"
    finally:
        with server.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        server.dispose()


@contextmanager
def throwaway_postgres(server_url: str = POSTGRES_SERVER_URL, prefix: str = "ancora_test") -> Iterator[str]:
    """URL of a new database on the PostgreSQL server at ``server_url``; dropped with its connections."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    server = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()
