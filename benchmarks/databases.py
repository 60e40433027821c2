"""Throwaway databases for benchmarks: created on the server, dropped afterwards whatever happens."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


@contextmanager
def throwaway_mariadb(server_url: str) -> Iterator[str]:
    """URL of a new, empty database on the MariaDB/MySQL server at ``server_url``."""
    name = f"ancora_bench_{secrets.token_hex(4)}"
    server = sa.create_engine(server_url)
    with server.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield f"{server_url}/{name}?charset=utf8mb4"
    finally:
        with server.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        server.dispose()
