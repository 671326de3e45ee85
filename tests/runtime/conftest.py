from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The PostgreSQL server the session-log tests use; each test gets a schema of its own there.
POSTGRES = os.environ.get("INTERLOCK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A session log URL on the test server, in a fresh schema dropped after the test.

    Skips without psycopg or a server (a failure where INTERLOCK_REQUIRE_ALL is set).
    """
    psycopg = pytest.importorskip("psycopg", reason="needs pip install 'interlock[postgres]'")
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.skip(f"no PostgreSQL at {POSTGRES}: {error}")
    schema = f"interlock_test_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in POSTGRES else "?"
    try:
        yield f"{POSTGRES}{separator}schema={schema}"
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a session log lives, once per backend: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "log" / "sessions.db")
    url: str = request.getfixturevalue("postgres_url")
    return url
