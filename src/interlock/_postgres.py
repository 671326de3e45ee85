"""One schema of a PostgreSQL server holding one of interlock's logs: connecting, retrying
over dropped connections, migrating its tables, and naming it without its password.

The session log (`runtime._store_postgres`) and the audit log's PostgreSQL sink
(`plugins._audit_postgres`) are built on it. psycopg 3 and psycopg-pool (the `postgres`
extra) are imported when a `Database` is opened, never by `import interlock`.

Each log keeps its own tables in the schema (`interlock`, or `?schema=` in the URL) and its
own version table: the migrations applied, one row per version. Processes starting together
migrate one at a time (an advisory lock per schema); tables already current are not
touched, so a role without CREATE can write to them. A reader (`create=False`) never
creates nor migrates: it finds the tables, or says there is no log there.

Connecting fails in one of two ways. The server may refuse for good (no such database or
role, a wrong password, no pg_hba.conf entry): that is reported at once, with the server's
reason. Or it may not answer (down, restarting, unreachable): that is tried again for
`retry_for` seconds. psycopg_pool's own warnings about interlock's pools are silenced; `run`
reports the failure once, as one line.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote, urlencode

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
_SCHEMA_PARAMETER = re.compile(r"([?&])schema=([^&]*)")
_SCHEMES = ("postgresql", "postgres")
_SECRET = frozenset({"password", "sslpassword", "passfile"})
"""libpq's options that hold a password or name a file of them: never shown."""

_POOL = "interlock-"
"""How interlock's pools' names start: psycopg_pool's records about them are silenced."""

# How often a caller waiting for a connection, while the pool has none that connected
# last, looks at what its connecting met: a refusal for good ends the wait then, not at
# `retry_for`. A pool that connects waits in one piece (its waiters keep their turns).
_POLL = 0.1

# SQLSTATEs besides class 08 that trying again may mend: the server shutting down
# (57P01-57P03), a statement cancelled by its timeout (57014, 55P03), a serialization
# failure or a deadlock (40001, 40P01).
_RETRIED = frozenset({"57P01", "57P02", "57P03", "57014", "55P03", "40001", "40P01"})

_LONGEST = 300
"""Characters of a server's message shown in an error."""

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
        conninfo, given, self.schema, self.location = _parse_url(url, log, error)
        self.quoted = f'"{self.schema}"'
        """The schema, quoted for statements."""
        self._retry_for = retry_for
        self._size = pool_size
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
            configure=functools.partial(_configure, timeout=max(1, round(retry_for * 1000))),
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
        busy = False  # whether the pool, connected, had no connection free
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
            except PoolTimeout:  # the pool is still connecting, or all its connections are busy
                if self._connects:
                    busy = True
                problem = self._failure or problem
                refusal = _refusal(problem)
                if refusal is not None:
                    raise self._error(
                        f"cannot {what} in the {self._log} at {self.location}: the server "
                        f"refuses: {refusal}; fix the URL (user, password, database)",
                        self.location,
                    ) from None
            except self.psycopg.OperationalError as failed:
                if not _passing(failed):  # the statement itself fails: trying again cannot mend it
                    raise self._error(
                        f"cannot {what} in the {self._log} at {self.location}: {_line(failed)}",
                        self.location,
                    ) from None
                problem = failed
                time.sleep(min(delay, max(deadline - time.monotonic(), 0)))
                delay = min(delay * 2, 1.0)
            else:
                if problem is not None:
                    logger.warning(
                        "the %s at %s: %s; could %s again after %.1f s", self._log,
                        self.location, _describe(problem), what, time.monotonic() - started,
                    )  # fmt: skip
                return result
            if time.monotonic() >= deadline and busy and problem is None:
                raise self._error(
                    f"cannot {what} in the {self._log} at {self.location}: its {self._size} "
                    f"connection{'s' if self._size != 1 else ''} stayed busy for "
                    f"{self._retry_for:g} s; raise the pool size or write less at once",
                    self.location,
                )
            if time.monotonic() >= deadline:
                tries = attempt + self._failed - failed_before
                cause = _describe(problem) if problem is not None else "no answer"
                check = (
                    "look for a transaction holding a lock (pg_stat_activity, pg_locks)"
                    if _timed_out(problem)
                    else "check that the server is up and reachable"
                )
                raise self._error(
                    f"cannot {what} in the {self._log} at {self.location}: {cause} (tried "
                    f"{tries} time{'s' if tries != 1 else ''} in {self._retry_for:g} s); {check}",
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
        if not self._has(conn, versions):
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

    def _current(self, conn: psycopg.Connection[Any], migrations: Migrations, versions: str) -> int:
        """The version the log's tables are at; 0 when there are none."""
        has = self._has(conn, versions)
        return self._version(conn, migrations, versions) if has else 0

    def _has(self, conn: psycopg.Connection[Any], table: str) -> bool:
        """Whether the schema holds `table`."""
        row = conn.execute("SELECT to_regclass(%s)", (f"{self.quoted}.{table}",)).fetchone()
        return row is not None and row[0] is not None

    def _migrate(
        self, conn: psycopg.Connection[Any], migrations: Migrations, versions: str
    ) -> None:
        schema, location = self.quoted, self.location
        # Tables already current need no DDL, nor the right to create (a writer's role).
        if self._current(conn, migrations, versions) == len(migrations):
            return
        try:
            with conn.transaction():
                # A migration may take long on a big table: only the lock waits are bounded.
                conn.execute("SET LOCAL statement_timeout = 0")
                # Processes that start together take turns (both logs of one schema
                # creating it too); the loser finds the work done.
                lock = f"interlock schema {self.schema}"
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
                f"grant CREATE on the database (or on schema {self.schema}) to this user, "
                "or open the log once as a user who has it",
                location,
            ) from None
        except self.psycopg.Error as problem:  # not the connection's: `run` tries those again
            if isinstance(problem, self.psycopg.OperationalError) and _passing(problem):
                raise
            raise self._error(
                f"cannot create the {self._log}'s tables at {location}: {_line(problem)}",
                location,
            ) from None


def _noting(connection: Any, note: Callable[[Exception | None], None]) -> Any:
    """psycopg's `connection` class, telling `note` how each connect went: the pool
    connects in a thread of its own, which only logs a failure, and `run` needs it."""

    class Noting(connection):  # type: ignore[misc]
        interlock = True  # psycopg_pool's records about it are silenced

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
    """An error as one line (libpq's messages add a hint on a line of their own), cut to
    `_LONGEST` characters (the server quotes the values it refused, however long)."""
    line = " ".join(str(problem).split())
    return line if len(line) <= _LONGEST else f"{line[: _LONGEST - 1]}…"


def _quiet_own_pools(record: logging.LogRecord) -> bool:
    """psycopg_pool's records about interlock's pools are dropped: `run` reports them."""
    args = record.args
    if not (isinstance(args, tuple) and args):
        return True
    # The pool's name, or one of its connections ("discarding closed connection: %s").
    return not (str(args[0]).startswith(_POOL) or getattr(args[0], "interlock", False))


def _configure(conn: psycopg.Connection[Any], *, timeout: int) -> None:
    """Make a commit durable on the server even where it is configured not to wait, and
    bound a statement (and its wait for a lock) by `timeout` ms: `retry_for` bounds the
    retries, and without this a statement waiting behind a lock would wait forever."""
    row = conn.execute("SHOW synchronous_commit").fetchone()
    if row is not None and row[0] == "off":
        conn.execute("SET synchronous_commit TO on")
    conn.execute(f"SET statement_timeout = {timeout}")
    conn.execute(f"SET lock_timeout = {timeout}")


def _passing(problem: Exception) -> bool:
    """Whether a statement's failure may pass when tried again: the connection dropped
    (no SQLSTATE, class 08, the server shutting down), the statement was cancelled (its
    timeout) or lost a serialization or deadlock race. Others (a row over the size limit)
    fail the same way every time."""
    state: str | None = getattr(problem, "sqlstate", None)
    return state is None or state.startswith("08") or state in _RETRIED


def _timed_out(problem: Exception | None) -> bool:
    """Whether a statement was cancelled by its timeout (or its lock wait's)."""
    return getattr(problem, "sqlstate", None) in ("57014", "55P03")


def _describe(problem: Exception) -> str:
    """What a retried failure was, for the log and the error, as one line."""
    state: str | None = getattr(problem, "sqlstate", None)
    if state in ("40001", "40P01"):
        return f"a transaction lost a race ({_line(problem)})"
    if _timed_out(problem):
        return f"a statement timed out waiting ({_line(problem)})"
    return _line(problem)


def locate(url: str, *, log: str, error: Fail) -> str:
    """The URL of the `log` to show (no password), checked as `Database` checks it, without
    connecting: what a log opened lazily names itself by."""
    return _parse_url(url, log, error)[3]


def _parse_url(url: str, log: str, error: Fail) -> tuple[str, dict[str, Any], str, str]:
    """(libpq URL without `schema`, its options as libpq reads them, the schema, the URL to
    show: without a password in any of libpq's places for one)."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - depends on the installation
        raise missing_extra(f"the PostgreSQL {log}", "psycopg", "postgres") from None

    scheme, sep, _ = url.partition("://")
    if scheme not in _SCHEMES:  # the key=value form too: its password would be shown
        named = f" (not {scheme}://)" if sep and re.fullmatch(r"[\w+.-]{1,20}", scheme) else ""
        raise error(
            f"the {log} URL must start with postgresql:// or postgres://{named}; "
            "the key=value form is not taken",
            f"{scheme}://..." if named else "(a URL not shown)",
        )
    authority, _, path = url[len(scheme) + 3 :].partition("/")
    if "@" not in authority and "@" in path.partition("?")[0]:
        # libpq ends the user and password at the first `/`: the rest would be taken for
        # the host and port, and shown.
        raise error(
            f"the {log} URL has an `@` after its first `/`: a password holding `/` (or `?`, "
            "`#`, `@`) must be percent-encoded (`/` as %2F)",
            f"{scheme}://...",
        )
    # The last `schema=` of the query (a password may hold `?`, which libpq allows).
    found = list(_SCHEMA_PARAMETER.finditer(url))
    schema, conninfo = "interlock", url
    if found:
        last = found[-1]
        schema = unquote(last.group(2))
        rest = url[last.end() :]
        conninfo = url[: last.start()] + (last.group(1) + rest[1:] if rest else "")
    try:
        given = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as problem:  # an option libpq does not know
        shown = f"{scheme}://..."  # libpq could not say where the password is
        raise error(
            f"the {log} URL {shown} is not a PostgreSQL URL libpq accepts: {_line(problem)}",
            shown,
        ) from None
    shown = _shown(scheme, given)
    if found:  # where the user put it: the URL shown finds the same log
        shown += ("&" if "?" in shown else "?") + urlencode({"schema": schema})
    if not _SCHEMA_NAME.fullmatch(schema):
        raise error(
            f"schema {schema!r} in the {log} URL is not a plain name: use lower-case "
            "letters, digits and _ (at most 63)",
            shown,
        )
    return conninfo, given, schema, shown


def _shown(scheme: str, given: dict[str, Any]) -> str:
    """The URL libpq read, without the options that hold or lead to a password."""
    options = {k: str(v) for k, v in given.items() if k.lower() not in _SECRET}
    user = options.pop("user", None)
    hosts = options.pop("host", "").split(",")
    ports = options.pop("port", "").split(",")
    ports = ports * len(hosts) if len(ports) == 1 else ports
    netloc = ",".join(
        quote(host, safe="") + (f":{port}" if port else "")
        for host, port in zip(hosts, ports, strict=False)
    )
    if user is not None:
        netloc = f"{quote(user, safe='')}@{netloc}"
    path = f"/{quote(options.pop('dbname'), safe='')}" if "dbname" in options else ""
    query = f"?{urlencode(options)}" if options else ""
    return f"{scheme}://{netloc}{path}{query}"
