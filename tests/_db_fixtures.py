"""Database fixtures: the same tests on SQLite and on the local PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN_DSN = os.environ.get(
    "TRIALLENS_TEST_PG_DSN", "postgresql://postgres@localhost:5432/test"
)


def _pg_admin_connection():  # type: ignore[no-untyped-def]
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"local PostgreSQL is not reachable: {exc.__class__.__name__}")


def fresh_postgres_url() -> Iterator[str]:
    """Create a database with a unique name, yield its URL, then drop it."""
    name = f"tl_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin_connection()
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin = _pg_admin_connection()
        with admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'triallens-test.db'}"
    else:
        yield from fresh_postgres_url()
