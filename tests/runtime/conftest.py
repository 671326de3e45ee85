from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a session log lives, once per backend: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "log" / "sessions.db")
    url: str = request.getfixturevalue("postgres_url")
    return url
