"""One schema of a PostgreSQL server holding one of interlock's logs: connecting, retrying
over dropped connections, migrating its tables, and naming it without its password.

The session log (`runtime._store_postgres`) and the audit log's PostgreSQL sink
(`plugins._audit_postgres`) are built on it. psycopg 3 and psycopg-pool (the `postgres`
extra) are imported when a `Database` is opened, never by `import interlock`.

Each log keeps its own tables in the schema (`interlock`, or `?schema=` in the URL) and its
own version table: the migrations applied, one row per version. Processes starting together
migrate one at a time (an advisory lock per log and schema).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._extras import missing_extra

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger("interlock.postgres")

T = TypeVar("T")

Fail = Callable[[str, str], Exception]
"""Makes the log's own error from a message and the URL without its password."""

Migrations = tuple[tuple[str, ...], ...]
"""Each migration is a list of statements with `{schema}` for the quoted schema; its version
is its position, from 1. Append new ones, never edit an applied one: a database records
which versions it has."""

# What the URL does not set itself. Without a connect timeout libpq waits on a silent host
# for minutes; the keepalives notice within about 25 s a connection that died without a word
# (a failover, a NAT that forgot it) while a statement waits for its answer.
_CONNECTION_DEFAULTS: dict[str, Any] = {
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class Database:
    """A pool of connections to a PostgreSQL database, for the log named `log` ("session
    log", "audit log") whose tables live in the URL's `?schema=`.

    The URL is libpq's (`?sslmode=`, `?application_name=` and the `PG*` variables work).
    Opening it migrates the log's tables (`migrations`, versions kept in the table
    `versions`). `run` tries work again over dropped connections for `retry_for` seconds.
    Every failure raises `error(message, location)`. Safe to use from several threads.
    """

    def __init__(
        self,
        url: str,
        *,
        log: str,
        error: Fail,
        migrations: Migrations,
        versions: str,
        retry_for: float,
        pool_size: int,
        application_name: str,
    ) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError:  # pragma: no cover - depends on the installation
            raise missing_extra(f"the PostgreSQL {log}", "psycopg", "postgres") from None
        self.psycopg = psycopg
        self._log = log
        self._error = error
        conninfo, self.schema, self.location = _parse_url(url, log, error)
        self.quoted = f'"{self.schema}"'
        """The schema, quoted for statements."""
        self._retry_for = retry_for
        try:
            given = psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError as problem:  # an option libpq does not know
            raise error(
                f"{self.location} is not a PostgreSQL URL libpq accepts: {problem}", self.location
            ) from None
        defaults = {
            **_CONNECTION_DEFAULTS,
            "application_name": application_name,
            "connect_timeout": max(1, round(retry_for)),
        }
        extra = {name: value for name, value in defaults.items() if name not in given}
        extra["autocommit"] = True
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            kwargs=extra,
            configure=_configure,
            timeout=retry_for,
            name=f"interlock-{log.replace(' ', '-')}",
            open=False,
        )
        self._pool.open(wait=False)
        try:
            self.run(
                "create or migrate its tables",
                lambda conn, _: self._migrate(conn, migrations, versions),
            )
        except BaseException:
            self._pool.close()
            raise

    def run(self, what: str, work: Callable[[psycopg.Connection[Any], int], T]) -> T:
        """`work(connection, attempt)`, tried again on a fresh connection while it fails on
        the connection (dropped, refused, timed out) and `retry_for` has not passed; `what`
        completes "cannot ..." in the error."""
        from psycopg_pool import PoolClosed

        deadline = time.monotonic() + self._retry_for
        delay, attempt = 0.05, 0
        while True:
            attempt += 1
            try:
                with self._pool.connection(timeout=max(deadline - time.monotonic(), 0.01)) as conn:
                    return work(conn, attempt)
            except PoolClosed:
                raise self._error(
                    f"the {self._log} at {self.location} is closed; cannot {what}", self.location
                ) from None
            except self.psycopg.OperationalError as problem:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._error(
                        f"cannot {what} in the {self._log} at {self.location}: {problem} "
                        f"(tried {attempt} times over {self._retry_for:g} s); check that the "
                        "server is up and reachable",
                        self.location,
                    ) from problem
                logger.warning(
                    "%s at %s: %s; trying again (%s)", self._log, self.location, problem, what
                )
                time.sleep(min(delay, left))
                delay = min(delay * 2, 1.0)

    def close(self) -> None:
        """Close the connections."""
        self._pool.close()

    def _migrate(
        self, conn: psycopg.Connection[Any], migrations: Migrations, versions: str
    ) -> None:
        schema, location = self.quoted, self.location
        try:
            with conn.transaction():
                # Processes that start together take turns; the loser finds the work done.
                lock = f"interlock {self._log} {self.schema}"
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock,))
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {schema}.{versions} "
                    "(version INTEGER PRIMARY KEY, applied DOUBLE PRECISION NOT NULL)"
                )
                row = conn.execute(f"SELECT MAX(version) FROM {schema}.{versions}").fetchone()
                current = int(row[0]) if row is not None and row[0] is not None else 0
                if current > len(migrations):
                    raise self._error(
                        f"the {self._log} at {location} has schema version {current}; "
                        f"this interlock knows up to {len(migrations)}: upgrade interlock",
                        location,
                    )
                for version in range(current + 1, len(migrations) + 1):
                    for statement in migrations[version - 1]:
                        conn.execute(statement.format(schema=schema))
                    conn.execute(
                        f"INSERT INTO {schema}.{versions} VALUES (%s, %s)", (version, time.time())
                    )
        except self.psycopg.errors.InsufficientPrivilege as problem:
            raise self._error(
                f"cannot create the {self._log}'s tables at {location} ({problem}): "
                f"grant CREATE on the database (or on schema {self.schema}) to this user",
                location,
            ) from None


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Make a commit durable on the server even where it is configured not to wait."""
    row = conn.execute("SHOW synchronous_commit").fetchone()
    if row is not None and row[0] == "off":
        conn.execute("SET synchronous_commit TO on")


def _parse_url(url: str, log: str, error: Fail) -> tuple[str, str, str]:
    """(libpq URL without `schema`, the schema, the URL to show: no password)."""
    parts = urlsplit(url)
    user, at, hosts = parts.netloc.rpartition("@")
    query = parse_qsl(parts.query, keep_blank_values=True)
    shown = urlunsplit(
        parts._replace(
            netloc=f"{user.partition(':')[0]}@{hosts}" if at else hosts,
            query=urlencode([q for q in query if q[0] != "password"]),  # libpq takes it here too
        )
    )
    schema = next((value for name, value in query if name == "schema"), "interlock")
    if not _SCHEMA_NAME.fullmatch(schema):
        raise error(
            f"schema {schema!r} in the {log} URL is not a plain name: use lower-case "
            "letters, digits and _ (at most 63)",
            shown,
        )
    conninfo = urlunsplit(parts._replace(query=urlencode([q for q in query if q[0] != "schema"])))
    return conninfo, schema, shown
