"""One schema of a PostgreSQL server holding one of interlock's logs: connecting, retrying
over dropped connections, migrating its tables, and naming it without its password.

The session log (`runtime._store_postgres`) and the audit log's PostgreSQL sink
(`plugins._audit_postgres`) are built on it. psycopg 3 and psycopg-pool (the `postgres`
extra) are imported when a `Database` is opened, never by `import interlock`.

Each log keeps its own tables in the schema (`interlock`, or `?schema=` in the URL) and its
own version table: the migrations applied, one row per version. Processes starting together
migrate one at a time (an advisory lock per log and schema). A reader (`create=False`) never
creates nor migrates: it finds the tables, or says there is no log there.

Connecting fails in one of two ways. The server may refuse for good (no such database or
role, a wrong password, no pg_hba.conf entry): that is reported at once, with the server's
reason. Or it may not answer (down, restarting, unreachable): that is tried again for
`retry_for` seconds. psycopg_pool's own warnings about interlock's pools are silenced; `run`
reports the failure once, as one line.
"""

from __future__ import annotations

import logging
import re
import threading
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

_POOL = "interlock-"
"""How interlock's pools' names start: psycopg_pool's records about them are silenced."""

# How often a caller waiting for a connection, while the pool has none that connected
# last, looks at what its connecting met: a refusal for good ends the wait then, not at
# `retry_for`. A pool that connects waits in one piece (its waiters keep their turns).
_POLL = 0.1

# Server answers to a connection that say "not now" rather than "never".
_PASSING = (
    "starting up",
    "shutting down",
    "recovery mode",
    "too many clients",
    "connection slots are reserved",
    "not yet accepting connections",
)


class Database:
    """A pool of connections to a PostgreSQL database, for the log named `log` ("session
    log", "audit log") whose tables live in the URL's `?schema=`.

    The URL is libpq's (`?sslmode=`, `?application_name=` and the `PG*` variables work).
    Opening it migrates the log's tables (`migrations`, versions kept in the table
    `versions`); with `create=False` (a reader) it only checks that they are there. `run`
    tries work again over dropped connections for `retry_for` seconds. Every failure raises
    `error(message, location)`. Safe to use from several threads.
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
        create: bool = True,
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
        self._failed = 0  # the pool's connects that failed, counted for the error message
        self._failure: Exception | None = None  # the last one, until a connect succeeds
        self._connects = False  # whether the last connect succeeded
        self._lock = threading.Lock()
        logging.getLogger("psycopg.pool").addFilter(_quiet_own_pools)  # once: a set
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            kwargs=extra,
            configure=_configure,
            timeout=retry_for,
            name=f"{_POOL}{log.replace(' ', '-')}",
            open=False,
            connection_class=_noting(psycopg.Connection, self._connected),
        )
        self._pool.open(wait=False)
        try:
            if create:
                self.run(
                    "create or migrate its tables",
                    lambda conn, _: self._migrate(conn, migrations, versions),
                )
            else:
                self.run("find its tables", lambda conn, _: self._find(conn, migrations, versions))
        except BaseException:
            self._pool.close()
            raise

    def run(self, what: str, work: Callable[[psycopg.Connection[Any], int], T]) -> T:
        """`work(connection, attempt)`, tried again on a fresh connection while it fails on
        the connection (dropped, refused, timed out) and `retry_for` has not passed; `what`
        completes "cannot ..." in the error. A server refusing the connection for good (see
        `_refusal`) fails at once."""
        from psycopg_pool import PoolClosed, PoolTimeout

        started = time.monotonic()
        deadline = started + self._retry_for
        failed_before, attempt, delay = self._failed, 0, 0.05
        problem: Exception | None = None
        while True:
            left = max(deadline - time.monotonic(), 0.01)
            wait = left if self._connects else min(_POLL, left)
            try:
                with self._pool.connection(timeout=wait) as conn:
                    attempt += 1
                    result = work(conn, attempt)
            except PoolClosed:
                raise self._error(
                    f"the {self._log} at {self.location} is closed; cannot {what}", self.location
                ) from None
            except PoolTimeout:  # the pool is still connecting: what did it meet?
                problem = self._failure or problem
                refusal = _refusal(problem)
                if refusal is not None:
                    raise self._error(
                        f"cannot {what} in the {self._log} at {self.location}: the server "
                        f"refuses: {refusal}; fix the URL (user, password, database)",
                        self.location,
                    ) from None
            except self.psycopg.OperationalError as lost:  # the work's connection dropped
                problem = lost
                time.sleep(min(delay, max(deadline - time.monotonic(), 0)))
                delay = min(delay * 2, 1.0)
            else:
                if problem is not None:
                    logger.warning(
                        "the %s at %s: %s; could %s again after %.1f s", self._log,
                        self.location, _line(problem), what, time.monotonic() - started,
                    )  # fmt: skip
                return result
            if time.monotonic() >= deadline:
                tries = attempt + self._failed - failed_before
                cause = _line(problem) if problem is not None else "no answer"
                raise self._error(
                    f"cannot {what} in the {self._log} at {self.location}: {cause} (tried "
                    f"{tries} time{'s' if tries != 1 else ''} in {self._retry_for:g} s); "
                    "check that the server is up and reachable",
                    self.location,
                ) from None

    def close(self) -> None:
        """Close the connections."""
        self._pool.close()

    def _connected(self, problem: Exception | None) -> None:
        """What one of the pool's connects met (None: it connected)."""
        with self._lock:
            self._failure, self._connects = problem, problem is None
            self._failed += problem is not None

    def _version(self, conn: psycopg.Connection[Any], migrations: Migrations, versions: str) -> int:
        """The schema version the log's tables are at; one newer than this interlock's fails."""
        row = conn.execute(f"SELECT MAX(version) FROM {self.quoted}.{versions}").fetchone()
        current = int(row[0]) if row is not None and row[0] is not None else 0
        if current > len(migrations):
            raise self._error(
                f"the {self._log} at {self.location} has schema version {current}; "
                f"this interlock knows up to {len(migrations)}: upgrade interlock",
                self.location,
            )
        return current

    def _find(self, conn: psycopg.Connection[Any], migrations: Migrations, versions: str) -> None:
        """A reader's opening: the tables are there, at this interlock's version."""
        table = conn.execute("SELECT to_regclass(%s)", (f"{self.quoted}.{versions}",)).fetchone()
        if table is None or table[0] is None:
            raise self._error(
                f"no {self._log} at {self.location}: schema {self.schema} holds no interlock "
                "tables; check the URL's database and ?schema= (writing to it creates them)",
                self.location,
            )
        current = self._version(conn, migrations, versions)
        if current < len(migrations):
            raise self._error(
                f"the {self._log} at {self.location} has schema version {current}; this "
                f"interlock reads version {len(migrations)}: write to it once to migrate it",
                self.location,
            )

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
                current = self._version(conn, migrations, versions)
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


def _noting(connection: Any, note: Callable[[Exception | None], None]) -> Any:
    """psycopg's `connection` class, telling `note` how each connect went: the pool
    connects in a thread of its own, which only logs a failure, and `run` needs it."""

    class Noting(connection):  # type: ignore[misc]
        @classmethod
        def connect(cls, *args: Any, **kwargs: Any) -> Any:
            try:
                conn = super().connect(*args, **kwargs)
            except Exception as problem:
                note(problem)
                raise
            note(None)
            return conn

    return Noting


def _refusal(problem: Exception | None) -> str | None:
    """The server's reason when it refused a connection for good (no such database or
    role, a wrong password, no pg_hba.conf entry), which trying again cannot mend; None
    when the failure may pass (refused, unreachable, timed out, the server starting)."""
    if problem is None:
        return None
    text = " ".join(str(problem).split())
    if "no password supplied" in text:
        return "it asks for a password and none was given (the URL, PGPASSWORD or ~/.pgpass)"
    _, fatal, reason = text.partition("FATAL: ")
    if not fatal or any(passing in reason for passing in _PASSING):
        return None
    return reason


def _line(problem: Exception) -> str:
    """An error as one line (libpq's messages add a hint on a line of their own)."""
    return " ".join(str(problem).split())


def _quiet_own_pools(record: logging.LogRecord) -> bool:
    """psycopg_pool's records about interlock's pools are dropped: `run` reports them."""
    args = record.args
    return not (isinstance(args, tuple) and args and str(args[0]).startswith(_POOL))


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
