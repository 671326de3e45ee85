from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from interlock import PluginManager

# CI sets this: there a test that skips (a missing service, tool or corpus) fails instead,
# so green always means everything ran. On a laptop such tests skip with their reason.
REQUIRE_ALL = os.environ.get("INTERLOCK_REQUIRE_ALL") == "1"

# Test modules of hosts whose framework needs an environment of its own (pins that conflict
# with the other extras). INTERLOCK_OWN_ENV names the hosts tested elsewhere: CI sets it for
# the main run and tests those modules in their own venv (.ci/run).
OWN_ENV = {"hermes": "adapters/test_hermes.py"}
collect_ignore = [
    path
    for host, path in OWN_ENV.items()
    if host in os.environ.get("INTERLOCK_OWN_ENV", "").split(",")
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped where everything must run: {report.longrepr}"


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if REQUIRE_ALL and report.skipped:
        report.outcome = "failed"


class FakeClock:
    """A monotonic clock the test moves by hand (drives the circuit breaker)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manager(clock: FakeClock) -> Iterator[PluginManager]:
    m = PluginManager(clock=clock)
    yield m
    m.close()


# The PostgreSQL server the session-log and audit-log tests use; each test gets a schema of
# its own there.
POSTGRES = os.environ.get("INTERLOCK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL on the test server, in a fresh schema dropped after the test.

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
